"""Lambda: functions, their reserved concurrency, asynchronous invoke settings and permissions.
(The trailing underscore: `lambda` is a Python keyword.)"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import AUTONAME_SUFFIX, Builder, Call, name_of, optional, pascal, required


def _function(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    function = name_of(i, name)
    yield (
        "lambda",
        "CreateFunction",
        {
            "FunctionName": function,
            **required(i, "Role"),
            **optional(i, "Runtime", "Handler", "Description", "Timeout", "MemorySize", "Architectures", "Tags"),
            "Code": {"ZipFile": b"PK"},  # the archive itself is the build's (tests/unit/test_artefacts_manifest.py)
            "Environment": {"Variables": i["environment"]["variables"]} if i.get("environment") else None,
            "VpcConfig": pascal(i.get("vpcConfig")),
            "LoggingConfig": pascal(i.get("loggingConfig")),
        },
    )
    reserved = i.get("reservedConcurrentExecutions")
    if reserved is not None and reserved >= 0:
        yield ("lambda", "PutFunctionConcurrency", {"FunctionName": function, "ReservedConcurrentExecutions": reserved})


def _event_invoke_config(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    yield (
        "lambda",
        "PutFunctionEventInvokeConfig",
        {
            **required(i, "FunctionName"),
            **optional(i, "MaximumRetryAttempts", "MaximumEventAgeInSeconds"),
            "DestinationConfig": pascal(i.get("destinationConfig")),
        },
    )


def _permission(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    yield (
        "lambda",
        "AddPermission",
        {
            "FunctionName": i["function"],
            "StatementId": i.get("statementId") or f"{name}{AUTONAME_SUFFIX}",
            **required(i, "Action", "Principal"),
            **optional(i, "SourceArn"),
        },
    )


BUILDERS: dict[str, Builder] = {
    "aws:lambda/function:Function": _function,
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": _event_invoke_config,
    "aws:lambda/permission:Permission": _permission,
}
