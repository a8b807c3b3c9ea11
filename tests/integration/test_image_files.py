"""The instance's text artefacts, checked offline with the real tools:
shellcheck on every shell script, `systemd-analyze verify` on the units as install-worker lays
them out, and `cloud-init schema` on the user data of each image mode."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.vm import files
from infra.vm.user_data import render_user_data, worker_dropin
from tests.support.boot import ARTEFACTS, POOL
from tests.support.cloud_init_tool import cloud_init_command
from tests.support.units import restart_prevented
from worker.runtime.settings import SETTINGS_EXIT_CODE

pytestmark = pytest.mark.timeout(600)

SHELLCHECK = Path(sys.executable).parent / "shellcheck"
SYSTEMD_UNITS = Path("/lib/systemd/system")


def shell_scripts() -> list[Path]:
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=files.REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    scripts = []
    for name in tracked:
        path = files.REPO_ROOT / name
        if not path.is_file():
            continue
        if path.suffix in {".sh", ".bash"}:
            scripts.append(path)
            continue
        with path.open("rb") as handle:
            first = handle.readline()
        if first.startswith(b"#!") and (b"bash" in first or first.rstrip().endswith(b"/sh")):
            scripts.append(path)
    return sorted(scripts)


def test_shellcheck_passes_on_every_shell_script() -> None:
    scripts = shell_scripts()
    names = {p.relative_to(files.REPO_ROOT).as_posix() for p in scripts}
    assert {"image/bin/start-worker", "image/bin/install-worker", "image/bin/fetch-env", "scripts/build"} <= names
    done = subprocess.run(
        [str(SHELLCHECK), "--severity=style", *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout


@pytest.fixture(scope="module")
def instance_root(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root file system laid out by the real install-worker from the real build artefacts."""
    root = tmp_path_factory.mktemp("instance")
    artefacts = tmp_path_factory.mktemp("artefacts")
    built = dist
    arch = "arm64" if platform.machine() == "aarch64" else "x86_64"
    shutil.copy(built / f"wheelhouse-{arch}.tar.gz", artefacts / "wheelhouse.tar.gz")
    shutil.copy(built / "image-files.tar.gz", artefacts / "image-files.tar.gz")
    done = subprocess.run(
        [str(files.IMAGE_DIR / "bin" / "install-worker"), str(artefacts)],
        env={"PATH": "/usr/bin:/bin", "INSTALL_ROOT": str(root), "WORKER_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "install-worker: celery-cluster-worker" in done.stdout
    # What user data writes at boot.
    (root / files.POOL_ENV.lstrip("/")).write_text("WORKER_QUEUES=default\n")
    (root / files.WORKER_DROPIN.lstrip("/")).write_text(worker_dropin(POOL))
    # systemd's own units (targets the services are ordered against).
    shutil.copytree(SYSTEMD_UNITS, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    return root


def verify(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *[f"/etc/systemd/system/{u}" for u in units]],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_installed_units(instance_root: Path) -> None:
    done = verify(instance_root, *files.UNITS)
    # verify exits 0 on many problems it only warns about, so any output is a failure.
    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).strip() == ""
    drain = instance_root / "opt" / "celery-cluster" / "venv" / "bin" / "celery-cluster-drain"
    assert subprocess.run([str(drain), "--help"], capture_output=True, check=False).returncode == 0


def test_the_wheelhouse_installed_offline_is_complete(instance_root: Path) -> None:
    """install-worker installed this build's wheelhouse with no package index (`--no-index
    --require-hashes`, the fixture's exit 0): nothing is missing, and the worker and the agent load."""
    bin_dir = instance_root / "opt" / "celery-cluster" / "venv" / "bin"
    bare = {"PATH": "/usr/bin:/bin"}
    check = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "check"], capture_output=True, text=True, env=bare, check=False
    )
    assert check.returncode == 0, check.stdout
    drain_help = subprocess.run(
        [str(bin_dir / "celery-cluster-drain"), "--help"], capture_output=True, text=True, check=False
    )
    assert drain_help.returncode == 0, drain_help.stderr
    assert "DRAIN_" in drain_help.stdout
    imported = subprocess.run(
        [str(bin_dir / "python"), "-c", "import worker.app, worker.drain.agent; print(worker.app.app.main)"],
        capture_output=True,
        text=True,
        env={**bare, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"},
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "worker"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_catches_a_broken_unit(instance_root: Path) -> None:
    unit = (instance_root / "etc" / "systemd" / "system" / files.WORKER_UNIT).read_text()
    broken = unit.replace("KillMode=mixed", "KillMode=gentle").replace("/bin/start-worker", "/bin/start-wroker")
    (instance_root / "etc" / "systemd" / "system" / "broken.service").write_text(broken)
    output = verify(instance_root, "broken.service")
    text = output.stdout + output.stderr
    assert "kill mode" in text
    assert "start-wroker" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_catches_a_bad_restart_prevent_status(instance_root: Path) -> None:
    unit = (instance_root / "etc" / "systemd" / "system" / files.WORKER_UNIT).read_text()
    assert "RestartPreventExitStatus=64\n" in unit
    broken = unit.replace("RestartPreventExitStatus=64\n", "RestartPreventExitStatus=64 SIGBOGUS\n")
    (instance_root / "etc" / "systemd" / "system" / "broken-status.service").write_text(broken)
    output = verify(instance_root, "broken-status.service")
    text = output.stdout + output.stderr
    assert "SIGBOGUS" in text


# (unit, its main program as installed, the environment of one bad setting it reads)
BAD_SETTING_STARTS = [
    (files.WORKER_UNIT, "bin/start-worker", {"WORKER_QUEUES": ""}),
    (files.WORKER_UNIT, "bin/start-worker", {"WORKER_QUEUES": "default", "CELERY_BROKER_URL": "kafka://nope"}),
    (files.SCHEDULER_UNIT, "bin/start-scheduler", {"CELERY_BROKER_URL": "kafka://nope"}),
    # Refused while beat builds the scheduler, before any connection (nothing reaches port 1).
    (
        files.SCHEDULER_UNIT,
        "bin/start-scheduler",
        {"CELERY_BROKER_URL": "redis://127.0.0.1:1/0", "SCHEDULER_LEASE_URL": "http://lease.example"},
    ),
    (files.DRAIN_UNIT, "venv/bin/celery-cluster-drain", {}),
]


@pytest.mark.parametrize(("unit", "program", "bad"), BAD_SETTING_STARTS)
def test_a_bad_setting_exits_with_a_status_its_unit_does_not_restart(
    instance_root: Path, unit: str, program: str, bad: dict[str, str]
) -> None:
    """The installed program, run as its unit runs it, exits with a status listed in the installed
    unit's RestartPreventExitStatus=: systemd gives up at once instead of restarting forever."""
    opt = instance_root / "opt" / "celery-cluster"
    environment = {"PATH": f"{opt / 'venv' / 'bin'}:/usr/bin:/bin", "HOME": str(instance_root), **bad}
    done = subprocess.run(
        [str(opt / program)], env=environment, capture_output=True, text=True, timeout=120, check=False
    )
    installed = instance_root / "etc" / "systemd" / "system"
    assert done.returncode == SETTINGS_EXIT_CODE, done.stderr
    assert str(done.returncode) in restart_prevented(unit, installed), unit
    assert any(word in done.stderr for word in ("invalid setting", "is required", "SCHEDULER_LEASE_URL")), done.stderr


def cloud_init_schema(path: Path) -> subprocess.CompletedProcess[str]:
    argv, env = cloud_init_command()
    command = [*argv, "schema", "--config-file", str(path)]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


@pytest.mark.parametrize("mode", ["bake", "boot", "ami"])
def test_cloud_init_schema_accepts_the_user_data(mode: str, tmp_path: Path) -> None:
    path = tmp_path / f"{mode}.yaml"
    path.write_text(render_user_data(mode, POOL, ARTEFACTS))  # type: ignore[arg-type]
    done = cloud_init_schema(path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Valid cloud-config" in done.stdout


def test_cloud_init_schema_rejects_broken_user_data(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(render_user_data("boot", POOL, ARTEFACTS).replace("packages:\n", "packages: python3.11\nx:\n"))
    done = cloud_init_schema(path)
    assert done.returncode != 0
    assert "packages" in done.stdout + done.stderr
