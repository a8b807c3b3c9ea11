"""The program refuses build artefacts that were not built from the source beside them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.artefacts.manifest import (
    ArtefactsError,
    check_built_from,
    load_artefacts,
    placeholder_artefacts,
    source_digest,
)


def tree(root: Path) -> Path:
    (root / "worker").mkdir(parents=True)
    (root / "worker" / "tasks.py").write_text("x = 1\n")
    (root / "image").mkdir()
    (root / "image" / "unit.service").write_text("[Service]\n")
    (root / "pyproject.toml").write_text("[project]\n")
    (root / "README.md").write_text("# readme\n")
    dist = root / "build" / "dist"
    dist.mkdir(parents=True)
    artefacts = {}
    for name in ("wheelhouse-x86_64.tar.gz", "wheelhouse-arm64.tar.gz", "image-files.tar.gz"):
        (dist / name).write_bytes(name.encode())
        artefacts[name] = {"sha256": name[:10].ljust(64, "0"), "bytes": len(name)}
    manifest = {
        "source_digest": source_digest(root),
        "artefacts": artefacts,
        "wheelhouses": {"x86_64": "wheelhouse-x86_64.tar.gz", "arm64": "wheelhouse-arm64.tar.gz"},
        "image_files": "image-files.tar.gz",
    }
    (dist / "manifest.json").write_text(json.dumps(manifest))
    return dist


def test_fresh_build_is_loaded(tmp_path: Path) -> None:
    dist = tree(tmp_path)
    artefacts = load_artefacts(tmp_path, dist)
    assert not artefacts.placeholder
    assert artefacts.wheelhouse("arm64").key == "builds/wheelhouse000000/wheelhouse-arm64.tar.gz"
    assert artefacts.image_files.path == dist / "image-files.tar.gz"


def test_changed_source_after_the_build_is_refused(tmp_path: Path) -> None:
    dist = tree(tmp_path)
    (tmp_path / "worker" / "tasks.py").write_text("x = 2\n")
    with pytest.raises(ArtefactsError, match="built from other source"):
        load_artefacts(tmp_path, dist)
    # Bytecode caches are not source.
    (tmp_path / "worker" / "tasks.py").write_text("x = 1\n")
    (tmp_path / "worker" / "__pycache__").mkdir()
    (tmp_path / "worker" / "__pycache__" / "tasks.cpython-311.pyc").write_bytes(b"\0")
    assert load_artefacts(tmp_path, dist).source_digest == source_digest(tmp_path)


def test_missing_build_is_refused_unless_rendering(tmp_path: Path) -> None:
    tree(tmp_path)
    with pytest.raises(ArtefactsError, match=r"run `make build`"):
        load_artefacts(tmp_path, tmp_path / "nowhere")
    placeholder = load_artefacts(tmp_path, tmp_path / "nowhere", allow_placeholder=True)
    assert placeholder.placeholder
    assert placeholder == placeholder_artefacts(tmp_path, tmp_path / "nowhere")


def test_a_bundle_that_make_build_wrote_must_come_from_this_source(tmp_path: Path) -> None:
    dist = tree(tmp_path)
    bundle = dist / "wheelhouse-arm64.tar.gz"  # any file the manifest lists
    check_built_from(bundle, tmp_path)
    (tmp_path / "worker" / "tasks.py").write_text("x = 2\n")
    with pytest.raises(ArtefactsError, match=r"built from other source .* run `make build` again"):
        check_built_from(bundle, tmp_path)
    # A file the manifest does not list, or one with no manifest beside it, is the operator's own.
    (dist / "own.zip").write_bytes(b"zip")
    check_built_from(dist / "own.zip", tmp_path)
    (tmp_path / "own.zip").write_bytes(b"zip")
    check_built_from(tmp_path / "own.zip", tmp_path)


def test_the_digest_covers_the_client_package_the_wheel_ships_and_the_build_steps(tmp_path: Path) -> None:
    tree(tmp_path)
    before = source_digest(tmp_path)
    (tmp_path / "celery_cluster_client").mkdir()
    (tmp_path / "celery_cluster_client" / "routes.py").write_text("ROUTES = {}\n")
    with_client = source_digest(tmp_path)
    (tmp_path / "infra" / "artefacts").mkdir(parents=True)
    (tmp_path / "infra" / "artefacts" / "pipeline.py").write_text("LAYOUT = 1\n")
    assert len({before, with_client, source_digest(tmp_path)}) == 3
