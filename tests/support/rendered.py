"""Every stack rendered under the Pulumi mocks once per process, with the lookups the render tests share
(the fixtures that hand them out are in tests/unit/infra/conftest.py)."""

from __future__ import annotations

import json
from typing import Any

from infra.cli.offline_render import Render, render_stack
from infra.config import StackConfig, load_stack_config, stack_names

STACKS = stack_names()


class Rendered:
    """One stack's render, with lookups the tests share."""

    def __init__(self, config: StackConfig, render: Render) -> None:
        self.config = config
        self.render = render
        self.document: dict[str, Any] = json.loads(json.dumps(render.as_json()))
        self.text = json.dumps(self.document)

    def inputs(self, type_: str) -> list[dict[str, Any]]:
        return [r["inputs"] for r in self.document["resources"] if r["type"] == type_]

    def named(self, type_: str) -> dict[str, dict[str, Any]]:
        return {r["name"]: r["inputs"] for r in self.document["resources"] if r["type"] == type_}

    def one(self, type_: str, name: str) -> dict[str, Any]:
        return self.named(type_)[name]


_CACHE: dict[str, Rendered] = {}


def rendered(stack: str) -> Rendered:
    if stack not in _CACHE:
        _CACHE[stack] = Rendered(load_stack_config(stack), render_stack(stack))
    return _CACHE[stack]
