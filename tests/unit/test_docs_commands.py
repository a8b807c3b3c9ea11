"""Every `pulumi config set` the docs and `scripts/deploy --rollback-help` tell you to run sets a key
the stack config has, to a value it accepts: each is applied, as the Pulumi CLI would, to the stack
it names, and the result is read through the same loader `pulumi up` uses.
"""

from __future__ import annotations

import copy
import re
import shlex
from typing import Any

import pytest

from infra.cli.deploy_steps import rollback_help
from infra.config import PROJECT, ROOT, ConfigError, parse_engine_config, read_stack_file, to_pulumi_config

# What a placeholder in the docs stands for, per key (a value of the documented shape).
EXAMPLES = {f"{PROJECT}:imageAmiId": "ami-0123456789abcdef0"}
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _commands(text: str) -> list[list[str]]:
    found = []
    for line in text.splitlines():
        match = re.search(r"pulumi config set (.*)$", line.split("#", 1)[0].strip().strip("`"))
        if match:
            found.append(shlex.split(match.group(1)))
    return found


def _sources() -> dict[str, list[list[str]]]:
    sources = {str(path.relative_to(ROOT)): _commands(path.read_text()) for path in DOCS}
    sources["scripts/deploy --rollback-help"] = _commands(rollback_help("prod", None))
    return {name: commands for name, commands in sources.items() if commands}


def _set(values: dict[str, Any], key: str, value: Any, *, path: bool) -> None:
    """What `pulumi config set [--path] key value` does to the stack's values."""
    name = key.removeprefix(f"{PROJECT}:")
    if not path:
        values[name] = value
        return
    parts = [p for p in re.split(r"\.|\[(\d+)\]", name) if p]
    target: Any = values
    for part, following in zip(parts, [*parts[1:], None], strict=True):
        index: int | str = int(part) if part.isdigit() else part
        if following is None:
            if isinstance(target, list) and isinstance(index, int) and index == len(target):
                target.append(value)
            else:
                target[index] = value
            return
        if isinstance(target, dict) and index not in target:
            target[index] = [] if following.isdigit() else {}
        target = target[index]


def _apply(commands: list[list[str]]) -> dict[str, dict[str, Any]]:
    stacks: dict[str, dict[str, Any]] = {}
    for argv in commands:
        stack, path, rest = "dev", False, []
        items = iter(argv)
        for item in items:
            if item == "--stack":
                stack = next(items)
            elif item == "--path":
                path = True
            else:
                rest.append(item)
        key, value = rest
        value = EXAMPLES.get(key, value) if "<" in value else value
        values = stacks.setdefault(stack, copy.deepcopy(read_stack_file(stack)))
        # The CLI stores the text; a number or boolean is decoded by the loader, as under `pulumi up`.
        _set(values, key, value, path=path)
    return stacks


@pytest.mark.parametrize(("commands"), list(_sources().values()), ids=list(_sources()))
def test_config_commands_set_real_keys_to_accepted_values(commands: list[list[str]]) -> None:
    for stack, values in _apply(commands).items():
        parse_engine_config(stack, to_pulumi_config(values))


def test_the_docs_name_config_commands_at_all() -> None:
    assert {"README.md", "scripts/deploy --rollback-help"} <= set(_sources())


def test_a_command_with_a_wrong_key_is_caught() -> None:
    # What the rollback advice used to say: a namespace nobody reads, so the pin did nothing.
    (values,) = _apply([["--stack", "prod", "image:amiId", "ami-0123456789abcdef0"]]).values()
    with pytest.raises(ConfigError, match=r"image:amiId: .*did you mean celery-cluster:imageAmiId\?"):
        parse_engine_config("prod", to_pulumi_config(values))
