"""Reading a stack file strictly: one line naming the file (and line) for anything that is not a mapping
of keys to values, including a key written twice.

PyYAML keeps the last of two equal keys without a word, while the Pulumi CLI refuses such a file; a
render that silently picked one of them would review a config that `pulumi up` never runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode

from infra.config.errors import ConfigError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise _DuplicateKeyError(f"line {line}: key {key!r} is set twice (first on line {seen[key]})")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _DuplicateKeyError(ValueError):
    pass


def load_yaml(path: Path) -> Any:
    """The document in `path`, or ConfigError naming the file and line of the first problem."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path.name}: cannot be read ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader
    except _DuplicateKeyError as exc:
        raise ConfigError(f"{path.name} {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "is not valid YAML").split())
        raise ConfigError(f"{path.name}{where}: not valid YAML ({problem})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: not valid YAML ({' '.join(str(exc).split())})") from None


def stack_file_config(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a Pulumi.<stack>.yaml, checked to be mappings with string keys."""
    document = load_yaml(path)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path.name}: must be a mapping with a `config:` key, not a {_kind(document)}")
    config = document.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path.name}: `config:` must be a mapping of keys to values, not a {_kind(config)}")
    for key in config:
        if not isinstance(key, str):
            raise ConfigError(f"{path.name}: config key {key!r} is not a string")
    return config


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )
