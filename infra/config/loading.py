"""Stack config in: Pulumi.yaml's declared defaults, a stack file, or the engine's config, parsed once.

`pulumi up` hands the program every key of the stack as a string (JSON for anything but a string),
and `make render` turns the stack file into exactly those strings (`to_pulumi_config`) before
reading them back through the same function (`parse_engine_config`), so the two cannot disagree:
`publisherSamplesPerMinute: "12"`, which `pulumi config set` writes, is 12 on both paths.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from infra.config.errors import ConfigError
from infra.config.files import load_yaml, stack_file_config
from infra.config.messages import PROJECT, aliases, closest, format_error
from infra.config.periodic_capacity import apply_periodic
from infra.config.stack import REGION_KEY, StackConfig
from worker.scheduler.schedule import ENTRIES

ROOT = Path(__file__).resolve().parent.parent.parent
PROJECT_FILE = ROOT / "Pulumi.yaml"
POOLS_KEY = "pools"
# Namespaces a stack may hold besides ours: the AWS provider's (aws:region, aws:profile, ...) and
# Pulumi's own (pulumi:tags, ...). Any other namespace is a typo or a key nobody reads.
FOREIGN_NAMESPACES = ("aws", "pulumi")


@cache
def declared_keys() -> Mapping[str, Mapping[str, Any]]:
    """`config:` of Pulumi.yaml: key -> {type, default, description, items}."""
    project = load_yaml(PROJECT_FILE)
    declared: dict[str, Mapping[str, Any]] = project["config"]
    return declared


def known_keys() -> list[str]:
    """Every key a stack file may set, namespaced (the candidates for a misspelt key)."""
    ours = [f"{PROJECT}:{key}" for key in aliases(StackConfig) if key not in ("stack", REGION_KEY)]
    return [*ours, REGION_KEY]


def _problems(stack: str, lines: list[str]) -> ConfigError:
    """One line per bad key, each naming the stack, so `two bad keys` reads as two lines."""
    return ConfigError("\n".join(f"invalid config for stack {stack!r}: {line}" for line in sorted(set(lines))))


def _validate(stack: str, raw: Mapping[str, Any], lines: list[str]) -> StackConfig:
    try:
        config = StackConfig.model_validate({"stack": stack, **raw})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        deeper = {tuple(e["loc"][:-1]) for e in errors}
        for error in errors:
            if error["type"] == "too_short" and tuple(error["loc"]) in deeper:
                continue  # a list whose only item is bad is not also "empty": the item's line says it
            if error["loc"] == ("stack",):
                lines.append(f"stack name {error['input']!r}: must be lowercase letters, digits and '-', at most 16")
            else:
                lines.append(format_error(StackConfig, error))
        raise _problems(stack, lines) from None
    if lines:
        raise _problems(stack, lines)
    # Periodic entries that start known work scale their pool ahead of each run (pools.<name>.schedules).
    return apply_periodic(config, ENTRIES) if config.scheduler_enabled else config


def parse_config(stack: str, raw: Mapping[str, Any]) -> StackConfig:
    """Validate a flat `{key: value}` mapping (keys without the project prefix, plus `aws:region`)."""
    return _validate(stack, raw, [])


def _decode(key: str, text: str) -> Any:
    """A value as the engine hands it over -> the Python value (what pulumi.Config.get_object does)."""
    spec = declared_keys().get(key, {})
    if spec.get("type") == "string":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # the model then says what type the key wants


def parse_engine_config(stack: str, config: Mapping[str, str]) -> StackConfig:
    """The stack config from the engine's view of it: every key namespaced, every value a string."""
    raw: dict[str, Any] = {}
    lines: list[str] = []
    for key, text in config.items():
        namespace, colon, name = key.partition(":")
        if namespace == PROJECT and colon:
            raw[name] = _decode(name, text)
        elif key == REGION_KEY:
            raw[REGION_KEY] = text
        elif namespace not in FOREIGN_NAMESPACES or not colon:
            suggestion = closest(key, known_keys())
            hint = f"; did you mean {suggestion}?" if suggestion else ""
            lines.append(f"{key}: is not read by this project (its keys are {PROJECT}:*, aws:* and pulumi:*){hint}")
    return _validate(stack, merged_raw(raw), lines)


def _strip_project(key: str) -> str:
    return key.removeprefix(f"{PROJECT}:")


def read_stack_file(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """The `config:` of Pulumi.<stack>.yaml: our keys without the project prefix, others as written."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        stacks = sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))
        raise ConfigError(f"no stack file {path.name}; stacks here: {', '.join(stacks) or 'none'}")
    values: dict[str, Any] = {}
    for key, value in stack_file_config(path).items():
        if isinstance(value, dict) and "secure" in value:
            raise ConfigError(f"{path.name}: {key} is an encrypted secret; this stack's config must hold none")
        values[_strip_project(key) if key.startswith(f"{PROJECT}:") else key] = value
    return values


def merged_raw(stack_values: Mapping[str, Any]) -> dict[str, Any]:
    """Pulumi.yaml defaults overlaid with a stack's values, as the Pulumi engine merges them."""
    raw = {key: spec["default"] for key, spec in declared_keys().items() if "default" in spec}
    raw.update(stack_values)
    return raw


def load_stack_config(stack: str, root: Path = ROOT) -> StackConfig:
    """Stack config without the Pulumi engine: Pulumi.<stack>.yaml read as `pulumi up` reads it."""
    return parse_engine_config(stack, to_pulumi_config(read_stack_file(stack, root)))


def stack_names(root: Path = ROOT) -> list[str]:
    """Every stack that has a Pulumi.<stack>.yaml."""
    return sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))


def _engine_text(value: Any) -> str:
    # JSON, as the engine serialises a non-string value; `.inf` becomes `Infinity`, which reads back
    # as infinity, so the model refuses it on both paths.
    return value if isinstance(value, str) else json.dumps(value)


def to_pulumi_config(stack_values: Mapping[str, Any]) -> dict[str, str]:
    """Stack values as the engine hands them to a program: namespaced keys, strings or JSON."""
    out: dict[str, str] = {}
    for key, value in merged_raw(stack_values).items():
        name = key if ":" in key else f"{PROJECT}:{key}"
        out[name] = _engine_text(value)
    return out


def engine_config() -> dict[str, str]:
    """Every key the engine gave this program (environment first, then what the host set)."""
    from pulumi.runtime.config import CONFIG, get_config_env  # noqa: PLC0415 - see config_from_pulumi

    return {**get_config_env(), **CONFIG.get()}


def config_from_pulumi() -> StackConfig:
    """Read the stack config inside the Pulumi program (the engine has merged Pulumi.yaml defaults)."""
    # Imported here: the simulator and `make local` load config without the Pulumi SDK installed.
    import pulumi  # noqa: PLC0415

    return parse_engine_config(pulumi.get_stack(), engine_config())
