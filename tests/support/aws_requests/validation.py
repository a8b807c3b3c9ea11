"""A request checked against botocore's service model: botocore's own ParamValidator (required
members, types, minimum lengths and values) plus what it leaves out: enums, maxima and patterns."""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.model import ListShape, MapShape, Shape, StructureShape
from botocore.validate import ParamValidator

if TYPE_CHECKING:
    from tests.support.aws_requests import Request


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def service_model(service: str) -> Any:
    return _session().get_service_model(service)


def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None  # a Java-only construct (e.g. \p{...}): ParamValidator's checks still apply


def _is_number(shape: Shape, value: Any) -> bool:
    return shape.type_name in ("integer", "long", "double", "float") and isinstance(value, int | float)


def _shape_errors(shape: Shape, value: Any, path: str) -> list[str]:
    """What ParamValidator does not check: enum, max (length, count, value) and pattern."""
    meta = shape.metadata
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        members = [(key, item) for key, item in value.items() if key in shape.members]
        return [e for key, item in members for e in _shape_errors(shape.members[key], item, f"{path}.{key}")]
    if isinstance(shape, ListShape) and isinstance(value, list):
        errors = _count_errors(meta, len(value), path, "items")
        for index, item in enumerate(value):
            errors += _shape_errors(shape.member, item, f"{path}[{index}]")
        return errors
    if isinstance(shape, MapShape) and isinstance(value, dict):
        errors = _count_errors(meta, len(value), path, "entries")
        for key, item in value.items():
            errors += _shape_errors(shape.key, key, f"{path} key {key!r}")
            errors += _shape_errors(shape.value, item, f"{path}[{key!r}]")
        return errors
    if shape.type_name == "string" and isinstance(value, str):
        return _string_errors(shape, value, path)
    if _is_number(shape, value) and "max" in meta and value > meta["max"]:
        return [f"{path}: {value} is above the maximum {meta['max']}"]
    return []


def _count_errors(meta: dict[str, Any], count: int, path: str, unit: str) -> list[str]:
    return [f"{path}: {count} {unit}, at most {meta['max']}"] if "max" in meta and count > meta["max"] else []


def _string_errors(shape: Shape, value: str, path: str) -> list[str]:
    meta = shape.metadata
    errors: list[str] = []
    enum = getattr(shape, "enum", None) or meta.get("enum")
    if enum and value not in enum:
        errors.append(f"{path}: {value!r} is not one of {sorted(enum)}")
    errors += _count_errors(meta, len(value), path, "characters")
    pattern = _compiled(meta["pattern"]) if "pattern" in meta else None
    if pattern is not None and not pattern.fullmatch(value):
        errors.append(f"{path}: {value!r} does not match {meta['pattern']!r}")
    return errors


def validate(request: Request) -> list[str]:
    """Every way `request` breaks its service model; empty when AWS's model accepts it."""
    operation = service_model(request.service).operation_model(request.operation)
    report = ParamValidator().validate(request.params, operation.input_shape)
    errors = [report.generate_report()] if report.has_errors() else []
    return errors + _shape_errors(operation.input_shape, request.params, request.operation)
