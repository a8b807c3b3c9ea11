"""infra/__main__.py, the module `pulumi up` runs, under the SDK's mocks."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pulumi
import pytest

from infra import program
from infra.artefacts import manifest
from infra.artefacts.targets import MANIFEST
from infra.cli.offline_render import install_mocks
from infra.config import read_stack_file
from tests.support.program import run_main


def test_entry_point_builds_the_stack(tmp_path: Path) -> None:
    bundle = tmp_path / "publisher.zip"
    bundle.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip stands in for `make build`'s
    # imageMode ami: this test is about the entry point, not `make build`'s wheelhouses (see below).
    render = install_mocks("dev", {**read_stack_file("dev"), "publisherBundle": str(bundle), "imageMode": "ami"})
    run_main()
    types = {r.type for r in render.resources}
    assert {"aws:autoscaling/group:Group", "aws:lambda/function:Function"} <= types
    (function,) = [f for f in render.of_type("aws:lambda/function:Function") if f.name == "publisher-fn"]
    assert function.inputs["code"] == {"archive": str(bundle)}


def test_entry_point_stops_on_bad_config_with_the_key_and_no_traceback() -> None:
    install_mocks("dev", {**read_stack_file("dev"), "brokerEngine": "memcached"})
    with pytest.raises(pulumi.RunError, match=r"celery-cluster:brokerEngine: .*'valkey', 'redis' or 'rabbitmq'"):
        run_main()


def test_entry_point_refuses_to_deploy_without_the_publisher_bundle(tmp_path: Path) -> None:
    install_mocks("dev", {**read_stack_file("dev"), "publisherBundle": str(tmp_path / "missing.zip")})
    with pytest.raises(pulumi.RunError, match=r"celery-cluster:publisherBundle: .* run `make build`"):
        run_main()


def test_entry_point_refuses_a_publisher_bundle_built_from_other_source(tmp_path: Path) -> None:
    bundle = tmp_path / "publisher.zip"
    bundle.write_bytes(b"PK\x05\x06" + bytes(18))
    # As `make build` leaves it, but from a source that is not this working tree's.
    stale = {"source_digest": "0" * 64, "artefacts": {bundle.name: {"sha256": "1" * 64, "bytes": 22}}}
    (tmp_path / MANIFEST).write_text(json.dumps(stale))
    install_mocks("dev", {**read_stack_file("dev"), "publisherBundle": str(bundle), "imageMode": "ami"})
    with pytest.raises(pulumi.RunError, match=r"celery-cluster:publisherBundle: .* other source .* `make build` again"):
        run_main()


@pytest.mark.parametrize("mode", ["bake", "boot"])
def test_entry_point_refuses_to_deploy_without_the_wheelhouses(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "publisher.zip"
    bundle.write_bytes(b"PK\x05\x06" + bytes(18))
    monkeypatch.setattr(program, "load_artefacts", functools.partial(manifest.load_artefacts, dist=tmp_path / "dist"))
    install_mocks("dev", {**read_stack_file("dev"), "publisherBundle": str(bundle), "imageMode": mode})
    with pytest.raises(pulumi.RunError, match=rf"celery-cluster:imageMode {mode}: .*manifest.json does not exist"):
        run_main()
