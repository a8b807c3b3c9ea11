"""Where the built code runs: the pools' Amazon Linux 2023 instances and the publisher's Lambda.

One CPython and one glibc floor for every target, so a single rule picks each wheel:
- Python 3.11 on the pools: Amazon Linux 2023 packages it as `python3.11` (its system Python is 3.9,
  too old for this project's `requires-python`).
- Python 3.13 for the publisher's Lambda: a runtime AWS supports well past 3.11's deprecation
  (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html lists python3.11's deprecation
  for 2026-06-30, python3.13's for 2029-06-30). The bundle gets cp313 wheels of the same pins.
- manylinux2014 (glibc 2.17): loads on AL2023 (glibc 2.34), the OS of both.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from typing import Final, Literal

Arch = Literal["x86_64", "arm64"]

PYTHON_VERSION: Final = "3.11"
# The interpreter the image installs and the virtualenv is built with (AL2023 package names).
IMAGE_PYTHON: Final = "python3.11"
IMAGE_PYTHON_PACKAGES: Final = ("python3.11", "python3.11-pip")

LAMBDA_PYTHON: Final = "3.13"
LAMBDA_RUNTIME: Final = f"python{LAMBDA_PYTHON}"
LAMBDA_ARCH: Final[Arch] = "arm64"
# Written by the metrics-publisher work; the bundle only has to contain the `worker` package.
LAMBDA_HANDLER: Final = "worker.publisher.handler.handler"  # Lambda spells it module.function

_MACHINE: Final[dict[Arch, str]] = {"x86_64": "x86_64", "arm64": "aarch64"}


@dataclass(frozen=True)
class Target:
    arch: Arch
    python: str = PYTHON_VERSION
    """CPython minor version on the target (its wheels' ABI and its dependencies' markers)."""

    @property
    def machine(self) -> str:
        """`uname -m` on the target, as wheel tags and environment markers spell it."""
        return _MACHINE[self.arch]

    @property
    def platforms(self) -> tuple[str, ...]:
        # Both spellings of the same tag: older wheels carry only one of them.
        return (f"manylinux2014_{self.machine}", f"manylinux_2_17_{self.machine}")

    @property
    def markers(self) -> dict[str, str]:
        """PEP 508 environment of the target, to evaluate dependency markers for it."""
        return {
            "implementation_name": "cpython",
            "implementation_version": _full_version(self.python),
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": _full_version(self.python),
            "python_version": self.python,
            "sys_platform": "linux",
        }


def _full_version(python: str) -> str:
    """This interpreter's patch release when it is the target's minor version (the closure is read
    from this interpreter's virtualenv, so its markers were evaluated with it), else x.y.0."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python:
        return platform.python_version()
    return f"{python}.0"


POOL_TARGETS: Final = (Target("x86_64"), Target("arm64"))
LAMBDA_TARGET: Final = Target(LAMBDA_ARCH, LAMBDA_PYTHON)


def wheelhouse_name(arch: Arch) -> str:
    return f"wheelhouse-{arch}.tar.gz"


WHEEL_DIST: Final = "celery-cluster-worker"
PUBLISHER_BUNDLE: Final = "publisher.zip"
IMAGE_FILES: Final = "image-files.tar.gz"
MANIFEST: Final = "manifest.json"
