"""The build: wheel -> wheelhouse per pool architecture -> publisher bundle -> image files -> manifest.

Everything is staged in `<out>.partial` and moved into place only when every step succeeded,
so a failed build never leaves a half-written `build/dist`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.artefacts import archive
from infra.artefacts.client import build_client_wheel
from infra.artefacts.closure import runtime_closure
from infra.artefacts.manifest import SOURCE, source_digest
from infra.artefacts.targets import (
    IMAGE_FILES,
    LAMBDA_ARCH,
    LAMBDA_HANDLER,
    LAMBDA_RUNTIME,
    LAMBDA_TARGET,
    MANIFEST,
    POOL_TARGETS,
    PUBLISHER_BUNDLE,
    PYTHON_VERSION,
    WHEEL_DIST,
    Target,
    wheelhouse_name,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# Lambda's limits for a function's code: 50 MB zipped when uploaded directly, 250 MB unzipped.
LAMBDA_ZIPPED_LIMIT = 50 * 1024 * 1024
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
LAMBDA = "lambda"  # the publisher bundle's entry among the per-architecture downloads


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


Report = Callable[[str], None]


@dataclass(frozen=True)
class BuildPlan:
    root: Path = REPO_ROOT
    out: Path = REPO_ROOT / "build" / "dist"
    targets: tuple[Target, ...] = POOL_TARGETS
    epoch: int | None = None  # SOURCE_DATE_EPOCH; by default the last commit's time


@dataclass
class BuildResult:
    out: Path
    manifest: dict[str, Any] = field(default_factory=dict)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def source_date_epoch(root: Path) -> int:
    """SOURCE_DATE_EPOCH if set, else the last commit's time: the same commit builds the same bytes."""
    if value := os.environ.get("SOURCE_DATE_EPOCH"):
        if not value.isdigit():
            raise BuildError(f"SOURCE_DATE_EPOCH must be whole seconds since the epoch, got {value!r}")
        return int(value)
    committed = _git(root, "log", "-1", "--format=%ct")
    return int(committed) if committed and committed.isdigit() else archive.ZIP_EPOCH_FLOOR


def build_wheel(root: Path, dest: Path, epoch: int) -> Path:
    """The worker wheel, by hatchling (reproducible: sorted entries, SOURCE_DATE_EPOCH timestamps)."""
    script = "import sys; from hatchling.build import build_wheel; print(build_wheel(sys.argv[1]))"
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(dest)], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BuildError(f"building the worker wheel failed:\n{done.stderr.strip()[-2000:]}")
    return dest / done.stdout.strip().splitlines()[-1]


def download_wheels(pins: dict[str, str], target: Target, dest: Path) -> dict[str, Path]:
    """One binary wheel per pin for the target, from the package index (never built from source)."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",  # the closure is already complete and pinned
        "--only-binary=:all:",
        "--python-version",
        target.python,
        "--implementation",
        "cp",
        *[arg for abi in (f"cp{target.python.replace('.', '')}", "abi3", "none") for arg in ("--abi", abi)],
        *[arg for platform in target.platforms for arg in ("--platform", platform)],
        "--dest",
        str(dest),
        *[f"{name}=={version}" for name, version in pins.items()],
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        missing = [line for line in done.stderr.splitlines() if "No matching distribution" in line]
        detail = "\n".join(missing) or done.stderr.strip()[-2000:]
        raise BuildError(
            f"no wheel for {target.arch} ({', '.join(target.platforms)}, CPython {target.python}):\n{detail}"
        )
    wheels: dict[str, Path] = {}
    for wheel in sorted(dest.glob("*.whl")):
        name = wheel.name.split("-")[0].replace("_", "-").lower()
        wheels[name] = wheel
    unmatched = {_normal(name) for name in pins} - {_normal(name) for name in wheels}
    if unmatched:
        raise BuildError(f"pip did not download wheels for {', '.join(sorted(unmatched))} ({target.arch})")
    return wheels


def _normal(name: str) -> str:
    return name.replace("_", "-").replace(".", "-").lower()


def requirements_lines(pins: dict[str, str], wheels: list[Path]) -> str:
    """A hash-pinned requirements file: `pip install --no-index --require-hashes` takes only these bytes."""
    by_name = {_normal(w.name.split("-")[0]): w for w in wheels}
    lines = []
    for name, version in sorted(pins.items()):
        wheel = by_name[_normal(name)]
        lines.append(f"{name}=={version} --hash=sha256:{sha256(wheel)}")
    return "\n".join(lines) + "\n"


def wheelhouse_entries(pins: dict[str, str], wheels: list[Path]) -> list[archive.Entry]:
    entries = [archive.Entry(f"wheelhouse/{w.name}", w.read_bytes()) for w in wheels]
    entries.append(archive.Entry("wheelhouse/requirements.txt", requirements_lines(pins, wheels).encode()))
    return entries


def lambda_entries(wheels: list[Path]) -> list[archive.Entry]:
    """Wheels unpacked the way pip installs them into a Lambda package's root (no scripts, no bytecode)."""
    entries: list[archive.Entry] = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zipped:
            for info in zipped.infolist():
                if info.is_dir():
                    continue
                name = info.filename
                head, _, rest = name.partition("/")
                if head.endswith(".data"):
                    kind, _, inner = rest.partition("/")
                    if kind not in {"purelib", "platlib"}:
                        continue  # console scripts and headers have no use in Lambda
                    name = inner
                if name.endswith(".pyc"):
                    continue
                executable = bool((info.external_attr >> 16) & 0o100)
                entries.append(archive.Entry(name, zipped.read(info), executable))
    return entries


def build(plan: BuildPlan, report: Report = print) -> BuildResult:
    epoch = plan.epoch if plan.epoch is not None else source_date_epoch(plan.root)
    staging = plan.out.with_name(plan.out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    artefacts: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="celery-cluster-build-") as scratch_dir:
        scratch = Path(scratch_dir)
        report(f"worker wheel (SOURCE_DATE_EPOCH={epoch})")
        wheel = build_wheel(plan.root, scratch / "wheel", epoch)
        shutil.copy2(wheel, staging / wheel.name)
        artefacts[wheel.name] = staging / wheel.name
        report("producer client wheel (celery_cluster_client alone)")
        client = build_client_wheel(plan.root, staging, epoch)
        artefacts[client.name] = client
        downloaded, pins_by_arch = _download_wheelhouses(plan, wheel, scratch, report)
        for target in plan.targets:
            name = wheelhouse_name(target.arch)
            entries = wheelhouse_entries(pins_by_arch[target.arch], downloaded[target.arch])
            archive.write_tar_gz(staging / name, entries, epoch)
            artefacts[name] = staging / name
        report(f"publisher bundle for Lambda {LAMBDA_RUNTIME}/{LAMBDA_ARCH} (handler {LAMBDA_HANDLER})")
        bundle = lambda_entries(downloaded[LAMBDA])
        archive.write_zip(staging / PUBLISHER_BUNDLE, bundle, epoch)
        artefacts[PUBLISHER_BUNDLE] = staging / PUBLISHER_BUNDLE
        unzipped = sum(len(entry.data) for entry in bundle)
        report("image files (units, scripts, CloudWatch agent config)")
        image_entries = [
            e for e in archive.entries_from_dir(plan.root / "image", "image/") if "__pycache__" not in e.name
        ]
        archive.write_tar_gz(staging / IMAGE_FILES, image_entries, epoch)
        artefacts[IMAGE_FILES] = staging / IMAGE_FILES
    _check_lambda_limits(artefacts[PUBLISHER_BUNDLE].stat().st_size, unzipped)
    manifest = {
        **_provenance(plan, epoch),
        "worker_wheel": wheel.name,
        "client_wheel": client.name,
        "wheelhouses": {t.arch: wheelhouse_name(t.arch) for t in plan.targets},
        "image_files": IMAGE_FILES,
        "requirements": pins_by_arch[plan.targets[0].arch],
        "lambda": {
            "bundle": PUBLISHER_BUNDLE,
            "runtime": LAMBDA_RUNTIME,
            "architecture": LAMBDA_ARCH,
            "handler": LAMBDA_HANDLER,
            "unzipped_bytes": unzipped,
        },
        "artefacts": {
            name: {"sha256": sha256(path), "bytes": path.stat().st_size} for name, path in sorted(artefacts.items())
        },
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(plan.out, ignore_errors=True)
    staging.rename(plan.out)
    return BuildResult(plan.out, manifest)


def _download_wheelhouses(
    plan: BuildPlan, wheel: Path, scratch: Path, report: Report
) -> tuple[dict[str, list[Path]], dict[str, dict[str, str]]]:
    """Per architecture (and the publisher's Lambda apart: its own CPython, so its own wheels), the
    downloaded wheels with the worker wheel, and the pins they satisfy."""
    downloaded: dict[str, list[Path]] = {}
    pins_by_arch: dict[str, dict[str, str]] = {}
    targets: dict[str, Target] = {**{t.arch: t for t in plan.targets}, LAMBDA: LAMBDA_TARGET}
    for arch, target in targets.items():
        pins = runtime_closure(WHEEL_DIST, target.markers)
        report(f"wheelhouse {arch}: {len(pins)} pinned dependencies ({', '.join(target.platforms)})")
        wheels = download_wheels(pins, target, scratch / f"wheels-{arch}")
        downloaded[arch] = [*wheels.values(), wheel]
        pins_by_arch[arch] = {**pins, WHEEL_DIST: wheel.name.split("-")[1]}
    return downloaded, pins_by_arch


def _check_lambda_limits(zipped: int, unzipped: int) -> None:
    if zipped > LAMBDA_ZIPPED_LIMIT or unzipped > LAMBDA_UNZIPPED_LIMIT:
        raise BuildError(
            f"{PUBLISHER_BUNDLE} is {zipped / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped: "
            "over Lambda's 50 MB / 250 MB limits"
        )


def _provenance(plan: BuildPlan, epoch: int) -> dict[str, Any]:
    return {
        "source_date_epoch": epoch,
        "source_digest": source_digest(plan.root),
        "git_commit": _git(plan.root, "rev-parse", "HEAD"),
        "git_dirty": bool(_git(plan.root, "status", "--porcelain", "--", *SOURCE)),
        "python": PYTHON_VERSION,
        "zlib": archive.ZLIB_VERSION,
    }
