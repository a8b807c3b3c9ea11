"""scripts/smoke --stack invokes the stack's smoke function: the request checked by botocore's Stubber
(which validates it against the Lambda service model) and the answers it must handle."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from infra.cli.remote_smoke import READ_MARGIN_SECONDS, RemoteSmokeError, client_config, invoke_smoke
from infra.components.smoke_function import TIMEOUT_SECONDS, WAIT_SECONDS

FUNCTION = "celery-cluster-dev-smoke"
REPORT = {
    "ok": True,
    "timeout_seconds": 840,
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


@pytest.fixture
def client() -> Iterator[tuple[Any, Stubber]]:
    lambda_client = boto3.client(
        "lambda", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x", config=client_config(840)
    )
    with Stubber(lambda_client) as stubber:
        yield lambda_client, stubber
        stubber.assert_no_pending_responses()


def _payload(document: Any) -> StreamingBody:
    data = json.dumps(document).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def test_invokes_synchronously_with_count_and_timeout(client: tuple[Any, Stubber]) -> None:
    lambda_client, stubber = client
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": _payload(REPORT)},
        {
            "FunctionName": FUNCTION,
            "InvocationType": "RequestResponse",
            "Payload": json.dumps({"count": 20, "timeout": 840}).encode(),
        },
    )
    assert invoke_smoke(lambda_client, FUNCTION, 20, 840) == REPORT


def test_a_crashed_function_is_an_error_naming_it(client: tuple[Any, Stubber]) -> None:
    lambda_client, stubber = client
    crash = {"errorMessage": "POOLS_JSON: lists no pool", "errorType": "SmokeConfigError"}
    stubber.add_response("invoke", {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": _payload(crash)})
    with pytest.raises(RemoteSmokeError, match=f"{FUNCTION} failed: POOLS_JSON: lists no pool"):
        invoke_smoke(lambda_client, FUNCTION, 20, 840)


def test_a_missing_function_is_an_error_naming_it(client: tuple[Any, Stubber]) -> None:
    lambda_client, stubber = client
    stubber.add_client_error("invoke", "ResourceNotFoundException", "Function not found", 404)
    with pytest.raises(RemoteSmokeError, match=f"invoking {FUNCTION} failed"):
        invoke_smoke(lambda_client, FUNCTION, 20, 840)


def test_the_client_waits_past_the_function_and_never_retries() -> None:
    config = client_config(WAIT_SECONDS)
    assert config.read_timeout == WAIT_SECONDS + READ_MARGIN_SECONDS
    assert config.retries == {"total_max_attempts": 1}


def test_the_client_outlasts_the_function() -> None:
    assert client_config(WAIT_SECONDS).read_timeout > TIMEOUT_SECONDS
