"""What `make build` wrote, as the Pulumi program reads it: build/dist/manifest.json.

The manifest carries a digest of the source it was built from; the program compares it with the
source in the working tree, so `pulumi up` never ships a wheelhouse or a publisher bundle older than
the code beside it. `make render` never reads build/dist: it identifies every artefact by that same
digest (placeholder hashes for the wheelhouses and image files, the digest itself for the Lambda code),
so a render is a function of the commit and the stack config, whether or not `make build` ran.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from infra.artefacts.targets import IMAGE_FILES, MANIFEST, Arch, wheelhouse_name

ROOT: Final = Path(__file__).resolve().parents[2]
DIST: Final = ROOT / "build" / "dist"
# What decides the bytes of the artefacts: everything in the wheel (`worker` and `celery_cluster_client`,
# pyproject.toml [tool.hatch.build.targets.wheel]; its METADATA holds README.md), the image files, and the
# build steps that pick the targets, the dependency closure and the archive layout. Not in it: the
# versions of indirect dependencies, which come from the build's virtualenv (closure.py), not the commit.
SOURCE: Final = (
    "worker",
    "celery_cluster_client",
    "image",
    "pyproject.toml",
    "README.md",
    "infra/artefacts/archive.py",
    "infra/artefacts/closure.py",
    "infra/artefacts/pipeline.py",
    "infra/artefacts/targets.py",
)


class ArtefactsError(RuntimeError):
    """build/dist is missing or stale; the message says to run `make build`."""


@dataclass(frozen=True)
class Artefact:
    name: str
    sha256: str
    path: Path

    @property
    def key(self) -> str:
        """Content-addressed S3 key: a new build never overwrites what running instances came from."""
        return f"builds/{self.sha256[:16]}/{self.name}"


@dataclass(frozen=True)
class BuildArtefacts:
    source_digest: str
    wheelhouses: Mapping[Arch, Artefact]
    image_files: Artefact
    placeholder: bool = False

    def wheelhouse(self, arch: Arch) -> Artefact:
        return self.wheelhouses[arch]


def source_digest(root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    for entry in SOURCE:
        base = root / entry
        paths = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base]
        for path in paths:
            if "__pycache__" in path.parts or path.suffix == ".pyc" or not path.exists():
                continue
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def check_built_from(bundle: Path, root: Path = ROOT) -> None:
    """Refuse a file that `make build` wrote (the manifest beside it lists it) from other source than
    `root`'s. A file no manifest lists (a zip of the operator's own) is theirs to vouch for."""
    manifest_path = bundle.parent / MANIFEST
    if not manifest_path.is_file():
        return
    manifest = json.loads(manifest_path.read_text())
    if bundle.name in manifest.get("artefacts", {}) and manifest.get("source_digest") != source_digest(root):
        raise ArtefactsError(f"{bundle} was built from other source than this working tree: run `make build` again")


def placeholder_artefacts(root: Path = ROOT, dist: Path = DIST) -> BuildArtefacts:
    digest = source_digest(root)

    def fake(name: str) -> Artefact:
        return Artefact(name, hashlib.sha256(f"{digest}:{name}".encode()).hexdigest(), dist / name)

    arches: tuple[Arch, ...] = ("x86_64", "arm64")
    return BuildArtefacts(
        source_digest=digest,
        wheelhouses={arch: fake(wheelhouse_name(arch)) for arch in arches},
        image_files=fake(IMAGE_FILES),
        placeholder=True,
    )


def load_artefacts(root: Path = ROOT, dist: Path = DIST, *, allow_placeholder: bool = False) -> BuildArtefacts:
    manifest_path = dist / MANIFEST
    if not manifest_path.is_file():
        if allow_placeholder:
            return placeholder_artefacts(root, dist)
        raise ArtefactsError(f"{manifest_path} does not exist: run `make build` before `pulumi up`")
    manifest = json.loads(manifest_path.read_text())
    current = source_digest(root)
    if manifest.get("source_digest") != current:
        if allow_placeholder:
            return placeholder_artefacts(root, dist)
        raise ArtefactsError(f"{dist} was built from other source than this working tree: run `make build` again")
    artefacts = manifest["artefacts"]

    def artefact(name: str) -> Artefact:
        if name not in artefacts or not (dist / name).is_file():
            raise ArtefactsError(f"{dist / name} is missing: run `make build`")
        return Artefact(name, artefacts[name]["sha256"], dist / name)

    return BuildArtefacts(
        source_digest=current,
        wheelhouses={arch: artefact(name) for arch, name in manifest["wheelhouses"].items()},
        image_files=artefact(manifest["image_files"]),
    )
