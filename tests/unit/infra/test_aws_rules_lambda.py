"""AWS rules on the Lambda functions, checked over every rendered stack, each citing its source: a
concurrency reservation a new account can refuse is a setting, and the runtime is a supported one."""

from __future__ import annotations

from typing import Any

from infra.artefacts.targets import LAMBDA_RUNTIME
from infra.cli.offline_render import Render, render_config
from infra.config import merged_raw, parse_config, read_stack_file
from tests.support.rendered import STACKS, Rendered, rendered

FUNCTION = "aws:lambda/function:Function"


def _variant(stack: str, changes: dict[str, Any]) -> Render:
    values = {**read_stack_file(stack), **changes}
    return render_config(parse_config(stack, merged_raw(values)), values)


def test_publisher_concurrency_reservation_is_a_setting() -> None:
    """Lambda keeps 100 concurrent executions unreserved ("You can reserve up to the Unreserved account
    concurrency value that is shown, minus 100", https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html):
    on a new account (quota 10) any reservation is refused, so it must be possible to leave it out."""
    for stack in STACKS:
        function = rendered(stack).one(FUNCTION, "publisher-fn")
        reserve = rendered(stack).config.publisher_reserve_concurrency
        assert function.get("reservedConcurrentExecutions") == (1 if reserve else None)
    (function,) = [
        r.inputs
        for r in _variant("dev", {"publisherReserveConcurrency": False}).of_type(FUNCTION)
        if r.name == "publisher-fn"
    ]
    assert "reservedConcurrentExecutions" not in function


def test_lambda_runtime_is_a_supported_one(stack: Rendered) -> None:
    """python3.11 is deprecated on 2026-06-30; python3.13 is supported until 2029-06-30
    (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html). pulumi-aws lists both in its
    Runtime enum; the publisher's bundle is built for the runtime it deploys on."""
    deprecated = {"python3.8", "python3.9", "python3.10", "python3.11"}
    for function in stack.inputs(FUNCTION):
        assert function["runtime"] == LAMBDA_RUNTIME
        assert function["runtime"] not in deprecated
