"""User data per image mode, the pool's environment file, and the Image Builder component's structure."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
import yaml

from infra.vm import component, files
from infra.vm.user_data import ImageMode, UserDataError, render_user_data
from tests.support.boot import ARTEFACTS, POOL
from tests.support.units import systemd_unquote


def cloud_config(text: str) -> dict[str, Any]:
    assert text.startswith("#cloud-config\n")
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def written(config: dict[str, Any], path: str) -> str:
    [entry] = [f for f in config["write_files"] if f["path"] == path]
    return str(entry["content"])


def commands(config: dict[str, Any]) -> list[str]:
    return [" ".join(c) if isinstance(c, list) else str(c) for c in config["runcmd"]]


@pytest.mark.parametrize("mode", ["bake", "ami", "boot"])
def test_every_mode_writes_the_pool_env_and_starts_the_units(mode: Any) -> None:
    config = cloud_config(render_user_data(mode, POOL, ARTEFACTS))
    env = dict(systemd_unquote(line) for line in written(config, files.POOL_ENV).splitlines() if "=" in line)
    assert env["WORKER_QUEUES"] == "default,reports"
    assert env["WORKER_CONCURRENCY"] == "4"
    assert env["CELERY_SOFT_SHUTDOWN_TIMEOUT"] == "90"
    assert env["DRAIN_TIMEOUT"] == "120"
    assert env["DRAIN_LIFECYCLE_HOOK_NAME"] == POOL.lifecycle_hook_name
    assert env["WORKER_POOL_NAME"] == "default"
    assert env["WORKER_SECRET_ID"] == POOL.secret_id
    assert not any("BROKER" in name for name in env), "secrets are fetched at start, never in user data"
    assert "TimeoutStopSec=120" in written(config, files.WORKER_DROPIN)
    agent = json.loads(written(config, "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"))
    groups = {f["log_group_name"] for f in agent["logs"]["logs_collected"]["files"]["collect_list"]}
    assert groups == {POOL.log_group}
    assert set(agent["metrics"]["metrics_collected"]) == {"mem", "disk"}
    assert commands(config)[-1] == "systemctl enable --now --no-block celery-worker.service celery-drain.service"


def test_boot_mode_installs_only_from_the_stacks_own_bucket() -> None:
    text = render_user_data("boot", POOL, ARTEFACTS)
    config = cloud_config(text)
    runcmd = commands(config)
    uris = re.findall(r"\b[a-z0-9]+://\S+", " ".join(runcmd))
    assert uris
    assert sorted(uris) == sorted({ARTEFACTS.uri(ARTEFACTS.wheelhouse_key), ARTEFACTS.uri(ARTEFACTS.image_files_key)})
    assert not re.search(r"https?://", " ".join(runcmd))
    assert not any("pip" in command for command in runcmd), "pip runs only inside install-worker, with --no-index"
    install_worker = (files.IMAGE_DIR / "bin" / "install-worker").read_text()
    assert "--no-index" in install_worker
    assert "--require-hashes" in install_worker
    checksums = written(config, "/var/lib/celery-cluster/artefacts.sha256")
    assert f"{'a' * 64}  wheelhouse.tar.gz" in checksums
    assert any("sha256sum --check --strict" in command for command in runcmd)
    # The check runs before the install.
    assert next(i for i, c in enumerate(runcmd) if "sha256sum" in c) < next(
        i for i, c in enumerate(runcmd) if "install-worker" in c
    )


def test_baked_modes_download_nothing() -> None:
    modes: tuple[ImageMode, ...] = ("bake", "ami")
    for mode in modes:
        text = render_user_data(mode, POOL)
        assert "s3://" not in text
        assert "packages" not in cloud_config(text)


def test_boot_mode_without_a_bucket_is_refused() -> None:
    with pytest.raises(UserDataError, match="boot needs the stack's artefact bucket"):
        render_user_data("boot", POOL)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"drain_window": 60}, "drain window 60 s must exceed the soft shutdown timeout (90 s)"),
        ({"queues": ()}, "queues is empty"),
    ],
)
def test_pool_settings_that_cannot_drain_are_refused(change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UserDataError, match=re.escape(fragment)):
        render_user_data("bake", replace(POOL, **change))


def test_spot_pool_that_cannot_drain_in_two_minutes_is_warned() -> None:
    assert POOL.warnings() == []
    assert replace(POOL, spot=True).warnings() == []  # 90 s + margin fits the two-minute notice
    (warning,) = replace(POOL, spot=True, soft_shutdown_timeout=300, drain_window=330).warnings()
    assert "soft shutdown timeout 300 s does not fit a Spot notice" in warning
    # The agent requeues what still runs before the interruption (worker.drain.agent), not the broker later.
    assert "requeues them" in warning
    assert "visibility timeout" not in warning


def test_component_document_is_well_formed() -> None:
    text = component.component_text()
    assert component.problems(text) == []
    document = yaml.safe_load(text)
    assert set(component.declared_parameters(document)) == set(component.component_parameters("", "", "", ""))
    build = next(p for p in document["phases"] if p["name"] == "build")
    actions = [step["action"] for step in build["steps"]]
    assert actions.count("S3Download") == 2
    bash = " ".join(" ".join(s["inputs"]["commands"]) for s in build["steps"] if s["action"] == "ExecuteBash")
    assert "python3.11" in bash
    assert "amazon-cloudwatch-agent" in bash
    assert "sha256sum --check" in bash
    assert "install-worker" in bash
    # The sha256 check comes before the install.
    assert bash.index("sha256sum --check") < bash.index("install-worker")
    assert {p["name"] for p in document["phases"]} == {"build", "validate", "test"}


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("action: S3Download", "action: S3Fetch", "unknown action 'S3Fetch'"),
        ("'{{ WheelhouseS3Uri }}'", "s3://someone-elses-bucket/w.tar.gz", "S3Download source must be a parameter"),
        ("{{ ImageFilesSha256 }}", "{{ ImageFileSha }}", "parameter ImageFileSha is used but not declared"),
        ("schemaVersion: 1.0", "schemaVersion: 2.0", "schemaVersion must be 1.0"),
        ("- name: validate", "- name: verify", "unknown phase 'verify'"),
        ("name: InstallWorker", "name: Install Worker", "step name must be alphanumeric"),
    ],
)
def test_component_check_catches_broken_documents(old: str, new: str, fragment: str) -> None:
    text = component.component_text()
    assert old in text
    assert any(fragment in problem for problem in component.problems(text.replace(old, new, 1)))


def test_a_drain_waits_as_long_as_a_task_may_run() -> None:
    config = cloud_config(render_user_data("bake", replace(POOL, longest_task=1800)))
    env = dict(systemd_unquote(line) for line in written(config, files.POOL_ENV).splitlines() if "=" in line)
    assert env["CELERY_SOFT_SHUTDOWN_TIMEOUT"] == "1800"
    assert env["DRAIN_TIMEOUT"] == "1815"
    assert "TimeoutStopSec=1815" in written(config, files.WORKER_DROPIN)
    # A hook with a 120 s heartbeat timeout holds an instance at most 100 x 120 s, heartbeats included.
    with pytest.raises(UserDataError, match="holds an instance at most 12000 s"):
        render_user_data("bake", replace(POOL, longest_task=20000))
