"""CloudWatch Logs: log groups, their retention and their metric filters."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import Builder, Call, name_of


def _log_group(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    group = name_of(i, name)
    yield ("logs", "CreateLogGroup", {"logGroupName": group, "kmsKeyId": i.get("kmsKeyId"), "tags": i.get("tags")})
    if i.get("retentionInDays"):
        yield ("logs", "PutRetentionPolicy", {"logGroupName": group, "retentionInDays": i["retentionInDays"]})


def _metric_filter(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    transformation = i["metricTransformation"]
    yield (
        "logs",
        "PutMetricFilter",
        {
            "logGroupName": i["logGroupName"],
            "filterName": name_of(i, name),
            "filterPattern": i["pattern"],
            "metricTransformations": [
                {
                    "metricName": transformation["name"],
                    "metricNamespace": transformation["namespace"],
                    "metricValue": transformation["value"],
                    "defaultValue": transformation.get("defaultValue"),
                    "dimensions": transformation.get("dimensions"),
                    "unit": transformation.get("unit"),
                }
            ],
        },
    )


BUILDERS: dict[str, Builder] = {
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": _metric_filter,
}
