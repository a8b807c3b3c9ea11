"""The errors of stack config validation."""

from __future__ import annotations


class ConfigError(ValueError):
    """The stack config is invalid; each line names a key (`celery-cluster:pools.io.maxSize`) and the problem."""


class KeyRuleError(ValueError):
    """A cross-field rule broke; `key` is the config key (relative to the model) to blame."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message
