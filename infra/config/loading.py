"""Stack config in: Pulumi.yaml's declared defaults, a stack file, or the engine's config, parsed once."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from infra.config.errors import ConfigError, KeyRuleError
from infra.config.producers import TASK_ROUTES_KEY
from infra.config.stack import REGION_KEY, StackConfig

PROJECT = "celery-cluster"
ROOT = Path(__file__).resolve().parent.parent.parent
PROJECT_FILE = ROOT / "Pulumi.yaml"
POOLS_KEY = "pools"


@cache
def declared_keys() -> Mapping[str, Mapping[str, Any]]:
    """`config:` of Pulumi.yaml: key -> {type, default, description, items}."""
    project = yaml.safe_load(PROJECT_FILE.read_text())
    declared: dict[str, Mapping[str, Any]] = project["config"]
    return declared


def _key_name(loc: tuple[int | str, ...], base: tuple[str, ...] = ()) -> str:
    parts = [str(p) for p in (*loc, *base)]
    if not parts:
        return PROJECT
    if ":" in parts[0]:
        return ".".join(parts)
    return f"{PROJECT}:" + ".".join(parts)


def _format(error: Mapping[str, Any]) -> str:
    loc: tuple[int | str, ...] = tuple(error["loc"])
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, KeyRuleError):
        # A model validator names the key relative to the model it checks (the pool, or the stack).
        return f"{_key_name(loc, tuple(ctx_error.key.split('.')))}: {ctx_error.message}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "is required but not set"
    elif error["type"] == "extra_forbidden":
        message = "is not a known key (check the spelling against docs/infra.md)"
    elif error["type"] == "literal_error":
        message = f"{message} (got {error['input']!r})"
    elif error["type"] == "string_pattern_mismatch":
        message = f"{error['input']!r} is not valid: {message}"
    if loc == ("stack",):
        return f"stack name {error['input']!r}: must be lowercase letters, digits and '-', at most 16"
    return f"{_key_name(loc)}: {message}"


def parse_config(stack: str, raw: Mapping[str, Any]) -> StackConfig:
    """Validate a flat `{key: value}` mapping (keys without the project prefix, plus `aws:region`)."""
    try:
        return StackConfig.model_validate({"stack": stack, **raw})
    except ValidationError as exc:
        lines = sorted({_format(e) for e in exc.errors(include_url=False)})
        raise ConfigError(f"invalid config for stack {stack!r}:\n  " + "\n  ".join(lines)) from None


def _strip_project(key: str) -> str:
    return key.removeprefix(f"{PROJECT}:")


def read_stack_file(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """The `config:` of Pulumi.<stack>.yaml, keys without the project prefix."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        stacks = sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))
        raise ConfigError(f"no stack file {path.name}; stacks here: {', '.join(stacks) or 'none'}")
    document = yaml.safe_load(path.read_text()) or {}
    values: dict[str, Any] = {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            raise ConfigError(f"{path.name}: {key} is an encrypted secret; this stack's config must hold none")
        if key.startswith(f"{PROJECT}:") or key == REGION_KEY:
            values[_strip_project(key)] = value
    return values


def merged_raw(stack_values: Mapping[str, Any]) -> dict[str, Any]:
    """Pulumi.yaml defaults overlaid with a stack's values, as the Pulumi engine merges them."""
    raw = {key: spec["default"] for key, spec in declared_keys().items() if "default" in spec}
    raw.update(stack_values)
    return raw


def load_stack_config(stack: str, root: Path = ROOT) -> StackConfig:
    """Stack config without the Pulumi engine: Pulumi.yaml defaults plus Pulumi.<stack>.yaml."""
    return parse_config(stack, merged_raw(read_stack_file(stack, root)))


def stack_names(root: Path = ROOT) -> list[str]:
    """Every stack that has a Pulumi.<stack>.yaml."""
    return sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))


def to_pulumi_config(stack_values: Mapping[str, Any]) -> dict[str, str]:
    """Stack values as the engine hands them to a program: namespaced keys, strings or JSON."""
    out: dict[str, str] = {}
    for key, value in merged_raw(stack_values).items():
        name = key if ":" in key else f"{PROJECT}:{key}"
        out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def config_from_pulumi() -> StackConfig:
    """Read the stack config inside the Pulumi program (the engine has merged Pulumi.yaml defaults)."""
    # Imported here: the simulator and `make local` load config without the Pulumi SDK installed.
    import pulumi  # noqa: PLC0415

    cfg = pulumi.Config(PROJECT)
    raw: dict[str, Any] = {}
    for key, spec in declared_keys().items():
        text = cfg.get(key)
        if text is None:
            continue
        raw[key] = text if spec.get("type") == "string" else _decode(key, text)
    for key in (POOLS_KEY, TASK_ROUTES_KEY):  # maps: not declared in Pulumi.yaml
        text = cfg.get(key)
        if text is not None:
            raw[key] = _decode(key, text)
    region = pulumi.Config("aws").get("region")
    if region is not None:
        raw[REGION_KEY] = region
    return parse_config(pulumi.get_stack(), merged_raw(raw))


def _decode(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"{PROJECT}:{key}: {text!r} is not a valid value for this key") from None
