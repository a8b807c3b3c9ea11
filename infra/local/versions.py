"""Which code a local worker runs: this checkout's `worker` package, or another version of it (a directory
that holds a `worker` package, or a wheel) for `scripts/local --upgrade-to PATH`.

A version is named as a pool's instances name theirs (WORKER_CODE_VERSION, the `version` of every log
line and journal entry): the package version and a digest of the package's files, so two copies that
differ only in code still tell apart. A worker of another version starts with that directory first on
its PYTHONPATH and as its working directory (Celery's `--app` import puts the working directory first on
sys.path, `celery.utils.imports.cwd_in_path`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from worker import __version__

PACKAGE = "worker"
_NOT_IN_A_LABEL = re.compile(r"[^A-Za-z0-9._+-]")


class VersionError(ValueError):
    """PATH holds no worker package, or the same code as this checkout's."""


@dataclass(frozen=True)
class WorkerVersion:
    label: str
    """WORKER_CODE_VERSION: `<package version>+<digest>`."""
    package_version: str
    """The package's own `worker.__version__`."""
    root: Path | None = None
    """The directory that holds the `worker` package; None = this checkout's (as `make local` runs it)."""
    env: dict[str, str] = field(default_factory=dict, compare=False)
    """What a worker process of this version gets in its environment besides WORKER_CODE_VERSION."""

    def process_env(self) -> dict[str, str]:
        return {**self.env, "WORKER_CODE_VERSION": self.label}


CHECKOUT = WorkerVersion(__version__, __version__)
"""This checkout's package as `make local` runs it without an upgrade: the version a worker names itself."""


def package_digest(package: Path) -> str:
    """sha256 over the package's files (relative path and content), compiled files left out."""
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _label(package_version: str, digest: str) -> str:
    joiner = "." if "+" in package_version else "+"
    return _NOT_IN_A_LABEL.sub("-", f"{package_version}{joiner}{digest[:8]}")[-64:]


def _imported(root: Path | None) -> tuple[str, Path]:
    """`worker.__version__` and the package's directory, as a worker process started from `root` imports it."""
    env = dict(os.environ)
    if root is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    code = "import json, worker; print(json.dumps([worker.__version__, worker.__file__]))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no output)"]
        raise VersionError(f"--upgrade-to {root}: its worker package does not import: {lines[-1]}")
    version, init = json.loads(done.stdout.strip().splitlines()[-1])
    return str(version), Path(init).resolve().parent


def checkout_version() -> WorkerVersion:
    """This checkout's worker package, as `make local` starts it."""
    version, package = _imported(None)
    return WorkerVersion(_label(version, package_digest(package)), version)


def unpack_wheel(wheel: Path, into: Path) -> Path:
    """A wheel's files in a directory of their own (a wheel of pure Python is a zip of the package tree)."""
    with wheel.open("rb") as handle:
        target = into / f"upgrade-{hashlib.sha256(handle.read()).hexdigest()[:12]}"
    if not target.is_dir():
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(target)
    return target


def version_at(path: Path, current: WorkerVersion, unpack_into: Path) -> WorkerVersion:
    """The worker package at `path` (a directory holding `worker/`, or a wheel), as the upgrade runs it."""
    root = (unpack_wheel(path, unpack_into) if path.is_file() else path).resolve()
    if not (root / PACKAGE / "__init__.py").is_file():
        raise VersionError(
            f"--upgrade-to {path}: no {PACKAGE}/__init__.py in it (a directory holding the package, or a wheel)"
        )
    version, package = _imported(root)
    if package != root / PACKAGE:
        raise VersionError(f"--upgrade-to {path}: a worker started from it imports {package}, not {root / PACKAGE}")
    label = _label(version, package_digest(package))
    if label == current.label:
        raise VersionError(
            f"--upgrade-to {path}: the same code as this checkout's worker package ({label}): nothing to roll out"
        )
    pythonpath = os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])
    return WorkerVersion(label, version, root, {"PYTHONPATH": pythonpath})
