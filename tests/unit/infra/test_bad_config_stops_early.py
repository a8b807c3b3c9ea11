"""README: "A bad value stops `pulumi up` and `make render` before any resource is touched, with one
line per bad key"; here through the entry point `pulumi up` runs (`scripts/render` in
tests/integration/test_render_cli.py)."""

from __future__ import annotations

import copy

import pulumi
import pytest

from infra.cli.offline_render import install_mocks
from infra.config import ConfigError, merged_raw, parse_config, read_stack_file
from tests.support.bad_stack import TWO_BAD_KEYS
from tests.support.program import run_main


def test_bad_config_registers_no_resource_and_names_each_bad_key_on_its_own_line() -> None:
    render = install_mocks("dev", {**read_stack_file("dev"), **TWO_BAD_KEYS})
    with pytest.raises(pulumi.RunError) as raised:
        run_main()
    assert render.resources == [], "a resource was registered before the config was validated"
    lines = str(raised.value).splitlines()
    prefix = "invalid config for stack 'dev': "
    assert all(line.startswith(prefix) for line in lines), lines
    assert [line.removeprefix(prefix).split(":")[:2] for line in lines] == [
        ["celery-cluster", "brokerEngine"],
        ["celery-cluster", "egress"],
    ]


def test_each_line_names_the_key_as_the_stack_file_does_and_what_was_wrong() -> None:
    """The whole line, for a provider key (`aws:region`), a literal choice (with what was given) and a
    cross-field rule on a nested pool key: the README's own example."""
    raw = merged_raw(read_stack_file("prod"))
    pools = copy.deepcopy(raw["pools"])
    pools["default"]["minSize"] = 30
    with pytest.raises(ConfigError) as raised:
        parse_config("prod", {**raw, "aws:region": "moon-1", "brokerEngine": "memcached", "pools": pools})
    prefix = "invalid config for stack 'prod': "
    assert str(raised.value).splitlines() == [
        prefix + "aws:region: 'moon-1' is not valid: String should match pattern '^[a-z]{2}(-[a-z]+)+-[0-9]$'",
        prefix + "celery-cluster:brokerEngine: Input should be 'valkey', 'redis' or 'rabbitmq' (got 'memcached')",
        prefix + "celery-cluster:pools.default.minSize: must be <= maxSize (20), got 30",
    ]
