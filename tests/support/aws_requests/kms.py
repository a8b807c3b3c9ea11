"""KMS: keys."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import Builder, Call, optional


def _key(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    yield ("kms", "CreateKey", optional(i, "Description", "Policy"))


BUILDERS: dict[str, Builder] = {"aws:kms/key:Key": _key}
