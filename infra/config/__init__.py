"""The whole stack config as one typed, frozen, validated object. No resources here.

Two ways in, one parser:
- `load_stack_config(stack)` reads `Pulumi.yaml` declared defaults plus `Pulumi.<stack>.yaml` without
  the Pulumi engine (the simulator, the render, docs tooling);
- `config_from_pulumi()` reads the engine's config inside the program.
Both hand the engine's view (namespaced keys, string values) to `parse_engine_config`, so both see the
same decoding and validation, all of it before the program registers a resource.

Defaults: every scalar key's default lives in `Pulumi.yaml` (none is repeated here). `pools` is a map
of objects that a Pulumi.yaml schema cannot type, so `PoolConfig` holds its schema and defaults.
A bad value raises `ConfigError`: one line per bad key, naming it and what it accepts.

Modules: `errors` (the error types), `pool` (one pool's schema), `stack` (the stack's schema),
`aws_types` (names AWS accepts), `files` (strict YAML), `messages` (one line per bad key),
`loading` (stack files, Pulumi.yaml defaults and the engine's config into one `StackConfig`).
"""

from infra.config.errors import ConfigError, KeyRuleError
from infra.config.loading import (
    POOLS_KEY,
    PROJECT_FILE,
    ROOT,
    config_from_pulumi,
    declared_keys,
    engine_config,
    load_stack_config,
    merged_raw,
    parse_config,
    parse_engine_config,
    read_stack_file,
    stack_names,
    to_pulumi_config,
)
from infra.config.messages import PROJECT
from infra.config.pool import PoolConfig, ScheduleConfig, SpotConfig, WarmPoolConfig
from infra.config.stack import DRAIN_MARGIN_SECONDS, ENGINE_VERSIONS, LOG_RETENTION_DAYS, REGION_KEY, StackConfig

__all__ = [
    "DRAIN_MARGIN_SECONDS",
    "ENGINE_VERSIONS",
    "LOG_RETENTION_DAYS",
    "POOLS_KEY",
    "PROJECT",
    "PROJECT_FILE",
    "REGION_KEY",
    "ROOT",
    "ConfigError",
    "KeyRuleError",
    "PoolConfig",
    "ScheduleConfig",
    "SpotConfig",
    "StackConfig",
    "WarmPoolConfig",
    "config_from_pulumi",
    "declared_keys",
    "engine_config",
    "load_stack_config",
    "merged_raw",
    "parse_config",
    "parse_engine_config",
    "read_stack_file",
    "stack_names",
    "to_pulumi_config",
]
