"""`make build`: two builds of the same source give the same bytes, holding what instances and the Lambda
need. That the wheelhouse installs offline (no package index) is tested where an instance installs it:
tests/integration/test_image_files.py runs the image's install-worker on this build."""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from infra.artefacts.pipeline import BuildPlan, build, sha256
from infra.artefacts.targets import IMAGE_FILES, LAMBDA_PYTHON, MANIFEST, PUBLISHER_BUNDLE, Arch, wheelhouse_name
from tests.support.built import EPOCH

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def builds(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The run's shared build and a second, independent one of the same source and epoch."""
    second = build(BuildPlan(out=tmp_path_factory.mktemp("second") / "dist", epoch=EPOCH), report=lambda _: None)
    return dist, second.out


def test_two_builds_are_byte_identical(builds: tuple[Path, Path]) -> None:
    first, second = builds
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert {MANIFEST, PUBLISHER_BUNDLE, IMAGE_FILES, wheelhouse_name("x86_64"), wheelhouse_name("arm64")} <= set(names)
    for name in names:
        assert sha256(first / name) == sha256(second / name), f"{name} differs between two builds"
    manifest = json.loads((first / MANIFEST).read_text())
    assert manifest["client_wheel"].startswith("celery_cluster_client-")
    assert manifest["client_wheel"] in names
    for name, info in manifest["artefacts"].items():
        assert sha256(first / name) == info["sha256"]
    assert not first.with_name("dist.partial").exists()


def test_artefacts_hold_what_instances_and_lambda_need(builds: tuple[Path, Path]) -> None:
    dist = builds[0]
    manifest = json.loads((dist / MANIFEST).read_text())
    pairs: tuple[tuple[Arch, str], ...] = (("x86_64", "x86_64"), ("arm64", "aarch64"))
    for arch, machine in pairs:
        with tarfile.open(dist / wheelhouse_name(arch)) as tar:
            names = tar.getnames()
            requirements = tar.extractfile("wheelhouse/requirements.txt").read().decode()  # type: ignore[union-attr]
        assert f"wheelhouse/{manifest['worker_wheel']}" in names
        binary = [n for n in names if n.endswith(".whl") and "-none-any" not in n]
        assert binary, "expected at least one binary wheel (pydantic-core)"
        assert all(machine in n for n in binary), binary
        assert all("--hash=sha256:" in line for line in requirements.splitlines())
        assert len(requirements.splitlines()) == len([n for n in names if n.endswith(".whl")])
    with zipfile.ZipFile(dist / PUBLISHER_BUNDLE) as bundle:
        files = set(bundle.namelist())
        assert {"worker/__init__.py", "worker/drain/agent.py", "pydantic/__init__.py", "celery/__init__.py"} <= files
        assert "celery_cluster_client/contract.py" in files, "worker.names imports the client's contract"
        # Built for the Lambda runtime's CPython, not the pools' (infra.artefacts.targets.LAMBDA_PYTHON).
        abi = f"cpython-{LAMBDA_PYTHON.replace('.', '')}-aarch64-linux-gnu.so"
        assert any(n.startswith("pydantic_core/") and n.endswith(abi) for n in files)
        assert manifest["lambda"]["runtime"] == f"python{LAMBDA_PYTHON}"
        assert not any(n.endswith(".pyc") or n.startswith("bin/") for n in files)
        assert {info.date_time for info in bundle.infolist()} == {(2023, 11, 14, 22, 13, 20)}
