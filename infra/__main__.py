"""Pulumi entry point (Pulumi.yaml `main: infra/`): load config, build the stack, export outputs."""

import pulumi

from infra.config import ConfigError, config_from_pulumi
from infra.program import BundleMissingError, build, publisher_code, worker_artefacts

try:
    config = config_from_pulumi()
    stack_outputs = build(config, publisher_code(config), worker_artefacts(config))
except (ConfigError, BundleMissingError) as exc:
    # RunError ends `pulumi up` with the message alone: a bad key is the user's to fix, not a bug.
    raise pulumi.RunError(str(exc)) from None
for name, value in stack_outputs.items():
    pulumi.export(name, value)
