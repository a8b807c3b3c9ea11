"""Fixtures for the Pulumi program tests: every stack rendered once under mocks, shared by all tests."""

from __future__ import annotations

import pytest

from tests.support.rendered import STACKS, Rendered, rendered


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> Rendered:
    """Each Pulumi.<stack>.yaml of the repository, rendered."""
    return rendered(str(request.param))


@pytest.fixture
def dev() -> Rendered:
    return rendered("dev")


@pytest.fixture
def prod() -> Rendered:
    return rendered("prod")


@pytest.fixture
def staging() -> Rendered:
    return rendered("staging")
