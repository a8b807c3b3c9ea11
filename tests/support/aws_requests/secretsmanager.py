"""Secrets Manager: secrets (their values are SecretVersion resources, which map onto no request here)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import Builder, Call, name_of, optional


def _secret(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    yield ("secretsmanager", "CreateSecret", {"Name": name_of(i, name), **optional(i, "Description", "KmsKeyId")})


BUILDERS: dict[str, Builder] = {"aws:secretsmanager/secret:Secret": _secret}
