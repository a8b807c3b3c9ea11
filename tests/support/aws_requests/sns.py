"""SNS: topics."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import Builder, Call, drop_none, name_of, optional


def _topic(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    attributes = optional(i, "DisplayName", "KmsMasterKeyId")
    yield ("sns", "CreateTopic", {"Name": name_of(i, name), "Attributes": drop_none(attributes)})


BUILDERS: dict[str, Builder] = {"aws:sns/topic:Topic": _topic}
