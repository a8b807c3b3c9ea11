"""Run infra/__main__.py, the module `pulumi up` runs, under the SDK's mocks (install them first:
`infra.cli.offline_render.install_mocks`)."""

from __future__ import annotations

import runpy
import warnings

from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await


def run_main() -> None:
    def program() -> None:
        runpy.run_module("infra.__main__", run_name="__main__")

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_aws(\.|$)")
        _sync_await(run_pulumi_func(program))
