"""Pulumi entry point (Pulumi.yaml `main: infra/`): load config, build the stack, export outputs."""

import pulumi

from infra.config import config_from_pulumi
from infra.program import build, publisher_code, worker_artefacts

config = config_from_pulumi()
for name, value in build(config, publisher_code(config), worker_artefacts(config)).items():
    pulumi.export(name, value)
