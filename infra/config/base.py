"""The base of every config model: frozen, strict about unknown keys and non-finite numbers, camelCase aliases."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ConfigModel(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
        # `.inf` and `.nan` are YAML floats; no key of ours means anything by them.
        allow_inf_nan=False,
    )
