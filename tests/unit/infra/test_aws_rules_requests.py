"""The render's requests against botocore's service models (`tests/support/aws_requests/`): shapes,
required members, enums, ranges and patterns, for every resource that maps onto a create request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.aws_requests import requests_of, validate
from tests.support.rendered import STACKS, rendered


def _validated(stack: str) -> Iterator[tuple[str, list[str]]]:
    for request in requests_of(rendered(stack).document["resources"]):
        yield f"{request.resource} -> {request.service}:{request.operation}", validate(request)


@pytest.mark.parametrize("stack_name", STACKS)
def test_rendered_requests_are_valid_for_botocore(stack_name: str) -> None:
    """Every rendered resource that maps onto an AWS create request (Auto Scaling groups, policies and
    hooks, launch template data, alarms, ElastiCache, Amazon MQ, Lambda, Image Builder, IAM) builds a
    request that botocore's service model accepts: ParamValidator plus enums, maxima and patterns."""
    results = list(_validated(stack_name))
    failures = {where: errors for where, errors in results if errors}
    assert len(results) >= 30, f"only {len(results)} requests mapped"
    assert failures == {}


def test_the_request_check_catches_a_bad_value() -> None:
    """The validator is not vacuous: a runtime outside Lambda's enum and an over-long name are errors."""
    (function,) = [r for r in rendered("dev").document["resources"] if r["name"] == "publisher-fn"]
    bad = {**function, "inputs": {**function["inputs"], "runtime": "python2.6", "name": "x" * 200}}
    (request, *_) = requests_of([bad])
    errors = " ".join(validate(request))
    assert "Runtime" in errors
    assert "FunctionName" in errors
