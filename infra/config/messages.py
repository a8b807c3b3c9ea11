"""One line per bad key: pydantic's errors turned into `celery-cluster:<key>: <what is wrong>`,
with the closest real key when a key is unknown."""

from __future__ import annotations

import difflib
import re
from collections import abc
from collections.abc import Iterable, Mapping
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from infra.config.errors import KeyRuleError

PROJECT = "celery-cluster"
# How alike two key names must be (difflib ratio, case and punctuation ignored) to be suggested.
_CLOSE_ENOUGH = 0.6


def key_name(loc: tuple[int | str, ...], base: tuple[str, ...] = ()) -> str:
    parts = [str(p) for p in (*loc, *base)]
    if not parts:
        return PROJECT
    if ":" in parts[0]:
        return ".".join(parts)
    return f"{PROJECT}:" + ".".join(parts)


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like `name` (a misspelt key or namespace), if any is close enough.

    Each name is compared whole, by its part after the namespace, and namespace and key run together
    (`image:amiId` is most like `celery-cluster:imageAmiId`)."""
    namespace, _, key = name.rpartition(":")
    forms = {_squash(name), _squash(key), _squash(namespace + key)}
    best, best_score = None, _CLOSE_ENOUGH
    for candidate in candidates:
        targets = {_squash(candidate), _squash(candidate.rpartition(":")[2])}
        score = max(difflib.SequenceMatcher(None, a, b).ratio() for a in forms for b in targets)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (UnionType, Union):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation


def model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model that holds the key at `loc` (walking fields, mappings and lists), if it is one."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        origin = get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {field.alias or name: field for name, field in current.model_fields.items()}
            fields.update(current.model_fields)
            if str(part) not in fields:
                return None
            current = fields[str(part)].annotation
        elif origin in (Mapping, abc.Mapping, dict):
            current = get_args(current)[1]
        elif origin in (tuple, list):
            current = get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def aliases(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def format_error(root: type[BaseModel], error: Mapping[str, Any]) -> str:
    """One pydantic error as `<key>: <message>`."""
    loc: tuple[int | str, ...] = tuple(error["loc"])
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, KeyRuleError):
        # A model validator names the key relative to the model it checks (the pool, or the stack).
        return f"{key_name(loc, tuple(ctx_error.key.split('.')))}: {ctx_error.message}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "is required but not set"
    elif error["type"] == "extra_forbidden":
        model = model_at(root, loc[:-1])
        suggestion = closest(str(loc[-1]), aliases(model)) if model is not None else None
        if suggestion is not None:
            message = f"is not a known key; did you mean {key_name((*loc[:-1], suggestion))}?"
        else:
            message = "is not a known key (the keys are listed in the README's Configuration section)"
    elif error["type"] == "literal_error":
        message = f"{message} (got {error['input']!r})"
    elif error["type"] == "string_pattern_mismatch":
        message = f"{error['input']!r} is not valid: {message}"
    elif error["type"] == "finite_number":
        message = f"must be a finite number (got {error['input']!r})"
    return f"{key_name(loc)}: {message}"
