"""The registry of AWS limits: a limit is a check on a rendered stack's resources and the document that
states it; `@limit(source)` registers one, `check_all` runs them all. And what the checks share: the
resource types they look for, and sizes taken at their worst (the package's docstring says why)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.support.aws_requests import AUTONAME_SUFFIX

Resources = list[dict[str, Any]]
Check = Callable[[Resources], list[str]]

ARN_GROWTH = len("aws-iso-b") - len("aws") + len("ap-southeast-5") - len("us-east-1") + len(AUTONAME_SUFFIX)
"""How much longer a rendered (mocked) ARN can be in a real account."""

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
POLICY = "aws:autoscaling/policy:Policy"
GROUP = "aws:autoscaling/group:Group"
FUNCTION = "aws:lambda/function:Function"


@dataclass(frozen=True)
class Limit:
    name: str
    source: str
    check: Check


LIMITS: list[Limit] = []


def limit(source: str) -> Callable[[Check], Check]:
    """Register a check with the document that states its limit."""

    def register(check: Check) -> Check:
        LIMITS.append(Limit(check.__name__, source, check))
        return check

    return register


def check_all(resources: Resources) -> list[str]:
    """Every limit's violations, each line prefixed with the limit's name."""
    return [f"{item.name}: {problem}" for item in LIMITS for problem in item.check(resources)]


def of_type(resources: Resources, type_: str) -> Iterator[dict[str, Any]]:
    return (r for r in resources if r["type"] == type_)


def worst_case_length(text: str) -> int:
    """Characters of `text` once every mocked ARN in it is as long as AWS can make it."""
    return len(text) + text.count("arn:aws:") * ARN_GROWTH


def limits_by_name() -> dict[str, Limit]:
    return {item.name: item for item in LIMITS}


def sources(items: Iterable[Limit] = LIMITS) -> list[str]:
    """One line per limit: its name and its source (for reports)."""
    return [f"{item.name}: {item.source}" for item in items]
