"""CloudWatch Logs: log groups and their retention."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import Builder, Call, name_of


def _log_group(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    group = name_of(i, name)
    yield ("logs", "CreateLogGroup", {"logGroupName": group, "kmsKeyId": i.get("kmsKeyId"), "tags": i.get("tags")})
    if i.get("retentionInDays"):
        yield ("logs", "PutRetentionPolicy", {"logGroupName": group, "retentionInDays": i["retentionInDays"]})


BUILDERS: dict[str, Builder] = {"aws:cloudwatch/logGroup:LogGroup": _log_group}
