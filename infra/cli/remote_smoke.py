"""The smoke test run inside the stack's VPC: start the stack's smoke function, then collect its report.

The broker lives in private subnets, out of reach of a CI runner or a laptop; the smoke function
(`worker.smoke.handler.handler`, infra.components.smoke_function) runs the same test from inside, for up to
15 minutes while a pool at zero scales out. No connection stays open that long: a hosted CI runner sits
behind a NAT that drops a connection idle for about 4 minutes (Azure's default idle timeout, which resets
GitHub Actions connections: syndesisio/syndesis #9433), so a synchronous invocation failed the deploy of a
run that succeeded. Instead:

1. `start_smoke` invokes the function asynchronously (InvocationType Event: Lambda queues the event and
   answers 202 at once, https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html), with a run id of
   its own in the event. The call is never retried: a second invocation would send a second set of canaries.
2. Lambda sends the invocation record (the request, and the function's report or its error) to the stack's
   smoke results queue, the function's on-success and on-failure destination
   (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html).
3. `wait_for_report` polls that queue with long polls of at most 20 s (ReceiveMessage's WaitTimeSeconds
   maximum, https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html)
   until its run's record arrives or the deadline passes. A record of another run (a concurrent
   `scripts/smoke`, or a run whose deploy gave up) is left in the queue for its owner or its expiry.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from infra.components.smoke_function import MAX_EVENT_AGE_SECONDS, TIMEOUT_SECONDS, WAIT_SECONDS

NAT_IDLE_SECONDS: Final = 240
"""The idle timeout of the hosted runner's NAT (4 minutes, above): no request may wait this long for bytes."""
POLL_SECONDS: Final = 20
"""WaitTimeSeconds of each ReceiveMessage: SQS's maximum long poll (the API reference above)."""
RECEIVE_VISIBILITY_SECONDS: Final = 10
"""How long a received record stays hidden from other pollers. Ours is deleted at once; another run's is
left alone and is visible to its owner again after this (VisibilityTimeout, the API reference above)."""
DELIVERY_MARGIN_SECONDS: Final = 120
"""After the function's end: a cold start in the VPC, and Lambda delivering the record to the queue."""
MAX_MESSAGES: Final = 10
"""ReceiveMessage's maximum per call (the API reference above)."""


class RemoteSmokeError(RuntimeError):
    """The function could not run the test (not found, not allowed, crashed, no report in time); the message
    names the function and the run."""


def lambda_config() -> Config:
    """The asynchronous Invoke answers as soon as the event is queued; one attempt only (see above)."""
    return Config(connect_timeout=10, read_timeout=60, retries={"total_max_attempts": 1})


def sqs_config() -> Config:
    """The read timeout outlasts the long poll ("ensure that the HTTP response timeout for ReceiveMessage
    requests is longer than the WaitTimeSeconds parameter", the API reference above); a receive or delete
    that fails on the network is retried (standard mode)."""
    return Config(connect_timeout=10, read_timeout=POLL_SECONDS + 30, retries={"mode": "standard", "max_attempts": 5})


def new_run_id() -> str:
    return uuid.uuid4().hex


def result_deadline(timeout: float) -> float:
    """Seconds from the invocation after which no record of the run can still come: the longest it may wait in
    Lambda's queue, the function's run (the test's wait plus its margin, at most the function's timeout), and
    the delivery margin."""
    run = min(timeout + (TIMEOUT_SECONDS - WAIT_SECONDS), TIMEOUT_SECONDS)
    return MAX_EVENT_AGE_SECONDS + run + DELIVERY_MARGIN_SECONDS


def start_smoke(lambda_client: Any, function_name: str, run_id: str, count: int, timeout: float) -> None:
    """Queue one run of the function: event {"count", "timeout", "run_id"}."""
    try:
        response = lambda_client.invoke(
            FunctionName=function_name,
            InvocationType="Event",
            Payload=json.dumps({"count": count, "timeout": timeout, "run_id": run_id}).encode(),
        )
    except (ClientError, BotoCoreError) as exc:
        raise RemoteSmokeError(f"invoking {function_name} (run {run_id}) failed: {exc}") from None
    if response.get("StatusCode") != 202:
        raise RemoteSmokeError(
            f"invoking {function_name} (run {run_id}): Lambda answered {response.get('StatusCode')}, not 202 (queued)"
        )


def _record_of(body: str) -> dict[str, Any] | None:
    try:
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _run_of(record: dict[str, Any]) -> str | None:
    request = record.get("requestPayload")
    return str(request.get("run_id")) if isinstance(request, dict) and request.get("run_id") else None


def report_of(function_name: str, run_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """The function's report from its invocation record; a failed run is a RemoteSmokeError saying why."""
    condition = record.get("requestContext", {}).get("condition")
    payload = record.get("responsePayload")
    if condition == "Success" and isinstance(payload, dict) and isinstance(payload.get("pools"), list):
        return payload
    if condition == "Success":
        raise RemoteSmokeError(f"{function_name} (run {run_id}) returned no report: {str(payload)[:300]}")
    if condition == "EventAgeExceeded":
        detail = f"Lambda did not start it within {MAX_EVENT_AGE_SECONDS} s (throttled?)"
    elif isinstance(payload, dict) and payload.get("errorMessage"):
        detail = str(payload["errorMessage"])
    else:
        detail = str(payload)[:300]
    one_line = " ".join(detail.split())
    raise RemoteSmokeError(f"{function_name} failed (run {run_id}, {condition}): {one_line}")


def wait_for_report(
    sqs_client: Any,
    function_name: str,
    queue_url: str,
    run_id: str,
    deadline_seconds: float,
    *,
    on_wait: Callable[[float, float], None] = lambda elapsed, deadline: None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll `queue_url` until the record of `run_id` arrives (deleted once read) or `deadline_seconds` pass.
    `on_wait(elapsed, deadline)` after each poll that did not bring it."""
    started = clock()
    while (remaining := deadline_seconds - (clock() - started)) > 0:
        try:
            response = sqs_client.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=MAX_MESSAGES,
                WaitTimeSeconds=max(1, min(POLL_SECONDS, int(remaining))),
                VisibilityTimeout=RECEIVE_VISIBILITY_SECONDS,
            )
            for message in response.get("Messages", []):
                record = _record_of(message.get("Body", ""))
                if record is None or _run_of(record) != run_id:
                    continue  # another run's: not ours to delete
                sqs_client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                return report_of(function_name, run_id, record)
        except (ClientError, BotoCoreError) as exc:
            raise RemoteSmokeError(f"reading the report of {function_name} (run {run_id}) failed: {exc}") from None
        on_wait(clock() - started, deadline_seconds)
    raise RemoteSmokeError(
        f"no report from {function_name} for run {run_id} within {deadline_seconds:.0f} s "
        f"(its log group shows the run: search for {run_id})"
    )
