"""The program refuses build artefacts that were not built from the source beside them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.artefacts.manifest import ArtefactsError, load_artefacts, placeholder_artefacts, source_digest


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
