"""README: "A bad value stops `pulumi up` and `make render` before any resource is touched, with one
line per bad key"; here both halves, through the entry point `pulumi up` runs and through `scripts/render`."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest

from infra.cli.offline_render import install_mocks
from infra.config import ROOT, ConfigError, merged_raw, parse_config, read_stack_file
from tests.unit.infra.test_entry_point import _run_main

TWO_BAD_KEYS = {"brokerEngine": "memcached", "egress": "carrier-pigeon"}


def test_bad_config_registers_no_resource_and_names_each_bad_key_on_its_own_line() -> None:
    render = install_mocks("dev", {**read_stack_file("dev"), **TWO_BAD_KEYS})
    with pytest.raises(pulumi.RunError) as raised:
        _run_main()
    assert render.resources == [], "a resource was registered before the config was validated"
    lines = str(raised.value).splitlines()
    prefix = "invalid config for stack 'dev': "
    assert all(line.startswith(prefix) for line in lines), lines
    assert [line.removeprefix(prefix).split(":")[:2] for line in lines] == [
        ["celery-cluster", "brokerEngine"],
        ["celery-cluster", "egress"],
    ]


def test_make_render_writes_nothing_for_a_bad_stack(tmp_path: Path) -> None:
    # A copy of this working tree (the program as it is now) with a stack file of our own, so the
    # repository's own stacks are never edited. It runs what `scripts/render` execs, with our venv's
    # Python from the copy's root (so the copy's code and stack files are the ones read); no `.venv`
    # link in the copy, so nothing there can reinstall our venv to point at a temporary directory.
    repo = tmp_path / "repo"
    ignore = shutil.ignore_patterns(".venv", ".git", "build", "mutants", "__pycache__", ".*_cache")
    shutil.copytree(ROOT, repo, ignore=ignore, symlinks=True)
    lines = (ROOT / "Pulumi.dev.yaml").read_text().splitlines()
    for key, value in TWO_BAD_KEYS.items():
        # Replace the key where the stack sets it (a key set twice is itself an error), else add it.
        setting = f"  celery-cluster:{key}: {value}"
        at = [i for i, line in enumerate(lines) if line.startswith(f"  celery-cluster:{key}:")]
        if at:
            lines[at[0]] = setting
        else:
            lines.append(setting)
    stack = "\n".join(lines) + "\n"
    (repo / "Pulumi.bad.yaml").write_text(stack)
    out = tmp_path / "render"
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli.render", "--stack", "bad", "--out", str(out)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert not out.exists() or not any(out.iterdir()), "a render was written for an invalid stack"
    named = [line.split("celery-cluster:")[1].split(":")[0] for line in done.stderr.splitlines() if line.strip()]
    assert named == ["brokerEngine", "egress"], done.stderr  # one line per bad key, nothing else
    assert "Traceback" not in done.stderr


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
