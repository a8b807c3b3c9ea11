"""scripts/simulate-changed picks the pools whose policy differs from the base ref."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from infra.cli import simulate_changed
from infra.config import load_stack_config, stack_names
from infra.scaling.simulator import PoolSpec
from infra.simulation.stack import load_pool_spec

ROOT = Path(__file__).resolve().parents[2]


def test_no_pool_changed_against_this_commit() -> None:
    assert simulate_changed.changed_pools("HEAD") == []


def test_a_ref_without_the_stack_files_marks_every_pool_new() -> None:
    # Git's empty tree: a ref that holds no stack file, in any clone (a depth-1 checkout, where the
    # root commit is HEAD itself, included). `hash-object` without -w computes its id, writes nothing.
    first = subprocess.run(
        ["git", "hash-object", "-t", "tree", "/dev/null"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.strip()
    pools = simulate_changed.changed_pools(first)
    expected = {(stack, pool) for stack in stack_names() for pool in load_stack_config(stack).pools}
    assert {(s, p) for s, p, _ in pools} == expected
    assert {why for _, _, why in pools} == {"new"}


def test_an_edited_policy_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = stack_names()[0]
    pool = next(iter(load_stack_config(stack).pools))

    def edited(stack_name: str, pool_name: str) -> PoolSpec:
        spec = load_pool_spec(stack_name, pool_name)
        return spec if (stack_name, pool_name) != (stack, pool) else replace(spec, max_size=spec.max_size + 1)

    monkeypatch.setattr(simulate_changed, "load_pool_spec", edited)
    assert simulate_changed.changed_pools("HEAD") == [(stack, pool, "changed")]
