"""scripts/smoke --stack starts the stack's smoke function asynchronously and polls the results queue for its
run's record: the requests checked by botocore's Stubber (which validates each against the Lambda and SQS
service models), the queue's behaviour on moto, and the answers the deploy must handle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from typer.testing import CliRunner

from infra.cli import remote_smoke, smoke
from infra.cli.remote_smoke import (
    MAX_MESSAGES,
    NAT_IDLE_SECONDS,
    POLL_SECONDS,
    RECEIVE_VISIBILITY_SECONDS,
    RemoteSmokeError,
    lambda_config,
    result_deadline,
    sqs_config,
    start_smoke,
    wait_for_report,
)
from infra.components.smoke_function import (
    MAX_EVENT_AGE_SECONDS,
    RESULTS_RETENTION_SECONDS,
    TIMEOUT_SECONDS,
    WAIT_SECONDS,
    smoke_results_queue_name,
)
from infra.outputs import SMOKE_FUNCTION_NAME, SMOKE_RESULTS_QUEUE_URL

REGION = "eu-west-1"
FUNCTION = "celery-cluster-dev-smoke"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/123456789012/{smoke_results_queue_name('dev')}"
RUN = "0f3c9a7e5b2d4c1e8a6f9b0d2c4e6a8b"
OTHER_RUN = "ffffffffffffffffffffffffffffffff"
REPORT = {
    "ok": True,
    "timeout_seconds": 840,
    "run_id": RUN,
    "pools": [
        {
            "pool": "default",
            "ok": True,
            "sent": 20,
            "returned": 20,
            "wrong": 0,
            "pings_sent": 1,
            "answered_by": ["ip-10-40-1-7"],
            "p50_seconds": 0.02,
            "p95_seconds": 0.05,
            "in_service_before": 0,
            "in_service_after": 1,
        }
    ],
}


def record(run_id: str, condition: str = "Success", response: Any = None) -> str:
    """An invocation record as Lambda sends it to an SQS destination (the message body): the format of
    https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html."""
    failed = condition != "Success"
    return json.dumps(
        {
            "version": "1.0",
            "timestamp": "2026-01-12T10:00:00.000Z",
            "requestContext": {
                "requestId": "e4b46cbf-b738-4a1e-8880-a18cdf61200e",
                "functionArn": f"arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": 1,
            },
            "requestPayload": {"count": 20, "timeout": 840, "run_id": run_id},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"}
            | ({"functionError": "Unhandled"} if failed else {}),
            "responsePayload": REPORT if response is None and not failed else response,
        }
    )


def client(service: str, config: Any) -> Any:
    return boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x", config=config)


def stubbed(service: str, config: Any) -> Iterator[tuple[Any, Stubber]]:
    """The client with a Stubber active; every response queued must have been asked for."""
    stubbed_client = client(service, config)
    with Stubber(stubbed_client) as stubber:
        yield stubbed_client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def lambda_stub() -> Iterator[tuple[Any, Stubber]]:
    yield from stubbed("lambda", lambda_config())


@pytest.fixture
def sqs_stub() -> Iterator[tuple[Any, Stubber]]:
    yield from stubbed("sqs", sqs_config())


class Clock:
    """Moves `step` seconds on each reading: the polls take time without the test waiting for it."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def receive(wait: int) -> dict[str, Any]:
    return {
        "QueueUrl": QUEUE_URL,
        "MaxNumberOfMessages": MAX_MESSAGES,
        "WaitTimeSeconds": wait,
        "VisibilityTimeout": RECEIVE_VISIBILITY_SECONDS,
    }


def message(body: str, handle: str) -> dict[str, str]:
    return {"MessageId": f"id-{handle}", "ReceiptHandle": handle, "Body": body}


# --- Starting the run ----------------------------------------------------------------------------


def test_the_function_is_invoked_asynchronously_with_the_runs_id(lambda_stub: tuple[Any, Stubber]) -> None:
    lambda_client, stubber = lambda_stub
    stubber.add_response(
        "invoke",
        {"StatusCode": 202},
        {
            "FunctionName": FUNCTION,
            "InvocationType": "Event",
            "Payload": json.dumps({"count": 20, "timeout": 840, "run_id": RUN}).encode(),
        },
    )
    start_smoke(lambda_client, FUNCTION, RUN, 20, 840)


def test_an_invocation_lambda_refuses_names_the_function_and_the_run(lambda_stub: tuple[Any, Stubber]) -> None:
    lambda_client, stubber = lambda_stub
    stubber.add_client_error("invoke", "ResourceNotFoundException", "Function not found", 404)
    with pytest.raises(RemoteSmokeError, match=f"invoking {FUNCTION} \\(run {RUN}\\) failed: .*Function not found"):
        start_smoke(lambda_client, FUNCTION, RUN, 20, 840)


def test_an_invocation_that_was_not_queued_is_an_error(lambda_stub: tuple[Any, Stubber]) -> None:
    lambda_client, stubber = lambda_stub
    stubber.add_response("invoke", {"StatusCode": 200})
    with pytest.raises(RemoteSmokeError, match="answered 200, not 202"):
        start_smoke(lambda_client, FUNCTION, RUN, 20, 840)


# --- Collecting its report -----------------------------------------------------------------------


def test_its_runs_record_is_taken_and_deleted_and_another_runs_left(sqs_stub: tuple[Any, Stubber]) -> None:
    sqs_client, stubber = sqs_stub
    stubber.add_response("receive_message", {}, receive(POLL_SECONDS))  # nothing yet: the function runs
    stubber.add_response(
        "receive_message",
        {"Messages": [message(record(OTHER_RUN), "theirs"), message(record(RUN), "ours")]},
        receive(POLL_SECONDS),
    )
    # Only ours is deleted: the Stubber fails the test on a delete of "theirs" (expected parameters differ).
    stubber.add_response("delete_message", {}, {"QueueUrl": QUEUE_URL, "ReceiptHandle": "ours"})
    waits: list[float] = []
    report = wait_for_report(
        sqs_client, FUNCTION, QUEUE_URL, RUN, 1000, on_wait=lambda elapsed, _: waits.append(elapsed), clock=Clock(1)
    )
    assert report == REPORT
    assert len(waits) == 1, "progress after the poll that brought nothing"


def test_a_crashed_run_is_an_error_with_the_functions_message(sqs_stub: tuple[Any, Stubber]) -> None:
    sqs_client, stubber = sqs_stub
    crash = {"errorMessage": "POOLS_JSON: lists no pool", "errorType": "SmokeConfigError"}
    body = record(RUN, "RetriesExhausted", crash)
    stubber.add_response("receive_message", {"Messages": [message(body, "ours")]}, receive(POLL_SECONDS))
    stubber.add_response("delete_message", {}, {"QueueUrl": QUEUE_URL, "ReceiptHandle": "ours"})
    expected = f"{FUNCTION} failed \\(run {RUN}, RetriesExhausted\\): POOLS_JSON: lists no pool"
    with pytest.raises(RemoteSmokeError, match=expected):
        wait_for_report(sqs_client, FUNCTION, QUEUE_URL, RUN, 1000, clock=Clock(1))


def test_a_run_lambda_never_started_says_so(sqs_stub: tuple[Any, Stubber]) -> None:
    sqs_client, stubber = sqs_stub
    body = record(RUN, "EventAgeExceeded", {})
    stubber.add_response("receive_message", {"Messages": [message(body, "ours")]}, receive(POLL_SECONDS))
    stubber.add_response("delete_message", {}, {"QueueUrl": QUEUE_URL, "ReceiptHandle": "ours"})
    with pytest.raises(RemoteSmokeError, match=f"did not start it within {MAX_EVENT_AGE_SECONDS} s"):
        wait_for_report(sqs_client, FUNCTION, QUEUE_URL, RUN, 1000, clock=Clock(1))


def test_a_passed_deadline_is_one_line_naming_the_function_and_the_run(sqs_stub: tuple[Any, Stubber]) -> None:
    """Each poll waits at most 20 s, and the last one only what is left of the deadline."""
    sqs_client, stubber = sqs_stub
    for wait in (POLL_SECONDS, POLL_SECONDS, 10):  # the clock reads 10 s later each time: 50, 30, 10 s left
        stubber.add_response("receive_message", {"Messages": [message(record(OTHER_RUN), "theirs")]}, receive(wait))
    with pytest.raises(RemoteSmokeError) as raised:
        wait_for_report(sqs_client, FUNCTION, QUEUE_URL, RUN, 60, clock=Clock(10))
    text = str(raised.value)
    assert "\n" not in text
    assert text.startswith(f"no report from {FUNCTION} for run {RUN} within 60 s")


def test_a_queue_the_deploy_may_not_read_is_an_error_naming_the_run(sqs_stub: tuple[Any, Stubber]) -> None:
    sqs_client, stubber = sqs_stub
    stubber.add_client_error("receive_message", "KMS.AccessDeniedException", "not allowed to use the key", 400)
    with pytest.raises(RemoteSmokeError, match=f"reading the report of {FUNCTION} \\(run {RUN}\\) failed"):
        wait_for_report(sqs_client, FUNCTION, QUEUE_URL, RUN, 1000, clock=Clock(1))


@pytest.fixture
def moto_sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        sqs_client = boto3.client("sqs", config=sqs_config())
        url = sqs_client.create_queue(QueueName=smoke_results_queue_name("dev"))["QueueUrl"]
        yield sqs_client, url


def _count(sqs_client: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def test_on_a_queue_another_runs_record_stays_for_its_owner(moto_sqs: tuple[Any, str]) -> None:
    sqs_client, url = moto_sqs
    sqs_client.send_message(QueueUrl=url, MessageBody=record(OTHER_RUN))
    sqs_client.send_message(QueueUrl=url, MessageBody="not a record")
    sqs_client.send_message(QueueUrl=url, MessageBody=record(RUN))
    assert wait_for_report(sqs_client, FUNCTION, url, RUN, 120) == REPORT
    assert _count(sqs_client, url) == 2, "ours deleted, the others left"


# --- Limits -------------------------------------------------------------------------------------


def test_no_request_waits_as_long_as_the_runners_nat_keeps_an_idle_connection() -> None:
    assert POLL_SECONDS <= 20, "ReceiveMessage's longest poll"
    assert POLL_SECONDS < sqs_config().read_timeout < NAT_IDLE_SECONDS
    assert lambda_config().read_timeout < NAT_IDLE_SECONDS
    assert lambda_config().retries == {"total_max_attempts": 1}, "a retried Invoke is a second set of canaries"
    assert TIMEOUT_SECONDS > NAT_IDLE_SECONDS, "why the invocation cannot be synchronous"


def test_the_deadline_outlasts_every_record_and_the_queue_outlasts_the_deadline() -> None:
    longest = result_deadline(WAIT_SECONDS)
    assert longest >= MAX_EVENT_AGE_SECONDS + TIMEOUT_SECONDS, "queued as long as Lambda keeps it, then a full run"
    assert longest < RESULTS_RETENTION_SECONDS
    assert result_deadline(60) < longest


# --- scripts/smoke --stack ------------------------------------------------------------------------


def test_scripts_smoke_stack_starts_the_run_and_prints_its_report(
    moto_sqs: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs_client, url = moto_sqs
    sqs_client.send_message(QueueUrl=url, MessageBody=record(RUN))
    lambda_client = client("lambda", lambda_config())
    stubber = Stubber(lambda_client)
    payload = json.dumps({"count": 5, "timeout": 300.0, "run_id": RUN}).encode()
    stubber.add_response(
        "invoke", {"StatusCode": 202}, {"FunctionName": FUNCTION, "InvocationType": "Event", "Payload": payload}
    )
    stubber.activate()
    clients = {"lambda": lambda_client, "sqs": sqs_client}
    monkeypatch.setattr(boto3, "client", lambda service, **_: clients[service])
    monkeypatch.setattr(remote_smoke, "new_run_id", lambda: RUN)
    outputs = {SMOKE_FUNCTION_NAME: FUNCTION, SMOKE_RESULTS_QUEUE_URL: url}
    monkeypatch.setattr("infra.cli.deployed_outputs.stack_outputs", lambda stack: outputs)
    result = CliRunner().invoke(smoke.app, ["--stack", "dev", "--count", "5", "--timeout", "300"])
    assert result.exit_code == 0, result.output
    assert f"started {FUNCTION}" in result.output
    assert RUN in result.output
    assert "default" in result.output
    stubber.assert_no_pending_responses()


def test_scripts_smoke_stack_on_a_stack_without_the_queue_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("infra.cli.deployed_outputs.stack_outputs", lambda stack: {SMOKE_FUNCTION_NAME: FUNCTION})
    result = CliRunner().invoke(smoke.app, ["--stack", "dev"])
    assert result.exit_code == 2
    assert SMOKE_RESULTS_QUEUE_URL in result.output
