"""The smoke test run inside the stack's VPC: invoke its smoke function and read the report.

The broker lives in private subnets, out of reach of a CI runner or a laptop; the smoke function
(`worker.smoke.handler.handler`, deployed next to the metrics publisher) runs the same test from inside.
The invocation is synchronous (RequestResponse: "Lambda runs the function synchronously, keeps the
connection open until the function returns a response or times out",
https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html), and never retried: a retry would
send a second set of canaries.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.config import Config

READ_MARGIN_SECONDS = 120
"""Beyond the wait: the function times out 60 s after it (infra.components.smoke_function), plus a
cold start in the VPC."""


class RemoteSmokeError(RuntimeError):
    """The function could not run the test (not found, not allowed, crashed); the message says which."""


def client_config(timeout: float) -> Config:
    return Config(
        read_timeout=int(timeout) + READ_MARGIN_SECONDS, connect_timeout=10, retries={"total_max_attempts": 1}
    )


def invoke_smoke(lambda_client: Any, function_name: str, count: int, timeout: float) -> dict[str, Any]:
    """The function's report: {"ok", "pools": [{"pool", "ok", "sent", "returned", ...}], "error"?}."""
    try:
        response = lambda_client.invoke(
            FunctionName=function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps({"count": count, "timeout": timeout}).encode(),
        )
    except lambda_client.exceptions.ClientError as exc:
        raise RemoteSmokeError(f"invoking {function_name} failed: {exc}") from None
    body = response["Payload"].read().decode()
    if response.get("FunctionError"):
        detail = json.loads(body).get("errorMessage", body) if body.startswith("{") else body
        raise RemoteSmokeError(f"{function_name} failed: {detail}")
    report: dict[str, Any] = json.loads(body)
    return report
