"""DynamoDB: tables and their point-in-time recovery."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import Builder, Call, name_of, optional


def _table(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    table = name_of(i, name)
    keys = [{"AttributeName": i["hashKey"], "KeyType": "HASH"}]
    if i.get("rangeKey"):
        keys.append({"AttributeName": i["rangeKey"], "KeyType": "RANGE"})
    yield (
        "dynamodb",
        "CreateTable",
        {
            "TableName": table,
            "AttributeDefinitions": [{"AttributeName": a["name"], "AttributeType": a["type"]} for a in i["attributes"]],
            "KeySchema": keys,
            **optional(i, "BillingMode"),
            "SSESpecification": {"Enabled": i["serverSideEncryption"]["enabled"]}
            if i.get("serverSideEncryption")
            else None,
        },
    )
    if i.get("pointInTimeRecovery"):
        yield (
            "dynamodb",
            "UpdateContinuousBackups",
            {
                "TableName": table,
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": i["pointInTimeRecovery"]["enabled"]},
            },
        )


BUILDERS: dict[str, Builder] = {"aws:dynamodb/table:Table": _table}
