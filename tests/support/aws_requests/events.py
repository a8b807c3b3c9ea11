"""EventBridge: rules and their targets."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import AUTONAME_SUFFIX, Builder, Call, name_of, optional


def _rule(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    yield (
        "events",
        "PutRule",
        {"Name": name_of(i, name), **optional(i, "ScheduleExpression", "EventPattern", "Description")},
    )


def _target(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    target = i.get("targetId") or f"{name}{AUTONAME_SUFFIX}"
    yield ("events", "PutTargets", {"Rule": i["rule"], "Targets": [{"Id": target, "Arn": i["arn"]}]})


BUILDERS: dict[str, Builder] = {
    "aws:cloudwatch/eventRule:EventRule": _rule,
    "aws:cloudwatch/eventTarget:EventTarget": _target,
}
