"""Shared fixtures live in tests/support; this file registers them and orders the test files."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.support.fixtures", "tests.support.tls_brokers", "tests.support.redis_queues"]


def _weight(item: pytest.Item) -> int:
    if item.get_closest_marker("slow") is not None:
        return 0
    return 1 if "integration" in item.path.parts else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a slow test first, then the other integration files, the unit files last; a file's tests
    stay together and in their order. `make test` hands files to its two processes in this order
    (`--no-loadscope-reorder`), so the last files, which one process may run while the other has none
    left, are short ones. xdist's own order (most tests first) left the slowest, few-test files last."""
    weight: dict[str, int] = {}
    for item in items:
        weight[str(item.path)] = min(weight.get(str(item.path), 2), _weight(item))
    items.sort(key=lambda item: weight[str(item.path)])
