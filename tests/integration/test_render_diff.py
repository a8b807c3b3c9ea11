"""scripts/render-diff and the renders it compares, on real trees: this commit against itself, a changed
stack file, and a base that does not render (the pure diff is in tests/unit/test_render_diff.py)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.artefacts import pipeline
from infra.artefacts.manifest import source_digest
from infra.artefacts.targets import LAMBDA_HANDLER, MANIFEST, PUBLISHER_BUNDLE
from infra.cli import render_comparison as render_diff
from infra.cli.render_comparison import BaseRenderError, StackDiff, diff_renders, markdown, render_base, render_tree

ROOT = Path(__file__).resolve().parents[2]
STACKS = ["dev", "prod", "staging"]
LAMBDAS = ("aws:lambda/function:Function publisher-fn", "aws:lambda/function:Function publisher-smoke")


@dataclass(frozen=True)
class Run:
    result: subprocess.CompletedProcess[str]
    out: Path  # this checkout's renders; the base's are in out.parent / "render-base"

    def base_renders(self) -> dict[str, dict[str, Any]]:
        return {p.stem: json.loads(p.read_text()) for p in sorted((self.out.parent / "render-base").glob("*.json"))}


@pytest.fixture(scope="module")
def against_head(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """`scripts/render-diff --base HEAD`, run once: its renders of HEAD are the base of the next test too
    (each render of the three stacks takes about 25 s under coverage)."""
    out = tmp_path_factory.mktemp("render-diff") / "render"
    result = subprocess.run(
        [str(ROOT / "scripts" / "render-diff"), "--base", "HEAD", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=600,
    )
    return Run(result, out)


def test_render_diff_against_this_commit_reports_no_change(against_head: Run) -> None:
    result = against_head.result
    assert result.returncode == 0, result.stderr[-2000:]
    # Uncommitted edits to the program would show up here; on a clean checkout every stack is unchanged:
    # one "no change" line per stack, and no stack heading (a heading is what a changed stack gets).
    stacks = sorted(p.stem for p in against_head.out.glob("*.json"))
    assert stacks == ["dev", "prod", "staging"]
    assert sorted(against_head.base_renders()) == stacks
    summary = result.stdout[result.stdout.index("## Render diff against `HEAD`") :]
    assert summary.split("\n")[2:5] == [f"- **{stack}**: no change" for stack in stacks], summary
    assert "### " not in summary, summary


def _tree_at_head(dest: Path) -> Path:
    """This commit's files in `dest` (not a worktree: edits there never touch the repository)."""
    dest.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def test_a_changed_max_size_is_reported_against_the_base(tmp_path: Path, against_head: Run) -> None:
    head_tree = _tree_at_head(tmp_path / "head")
    config = head_tree / "Pulumi.dev.yaml"
    assert "      maxSize: 3\n" in config.read_text()
    config.write_text(config.read_text().replace("      maxSize: 3\n", "      maxSize: 4\n", 1))

    head = render_tree(head_tree, tmp_path / "render")
    base = against_head.base_renders()  # render_base("HEAD"), as the script ran it above
    assert against_head.result.returncode == 0, against_head.result.stderr[-2000:]
    diffs = [diff_renders(stack, base[stack], render) for stack, render in head.items()]

    by_stack = {d.stack: d for d in diffs}
    # The group's maxSize, and whatever is derived from it (the "backlog at max" alarm), nothing else.
    assert by_stack["dev"].changed["aws:autoscaling/group:Group pool-default-asg"] == ["maxSize"]
    assert all("pool-default" in r or "monitoring-default" in r for r in by_stack["dev"].changed)
    assert (by_stack["dev"].added, by_stack["dev"].removed) == ([], [])
    assert by_stack["prod"].empty
    assert by_stack["staging"].empty
    text = markdown(diffs, "HEAD")
    assert "### dev: +0 -0 ~" in text
    assert "- **prod**: no change" in text


def test_a_base_that_fails_to_render_is_an_error_not_everything_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _tree_at_head(tmp_path / "repo")
    config = repo / "Pulumi.dev.yaml"
    config.write_text(config.read_text().replace("      maxSize: 3\n", "      maxSize: -3\n", 1))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for command in (["init", "--quiet"], ["add", "--all"], ["commit", "--quiet", "--message", "broken base"]):
        subprocess.run([*git, *command], cwd=repo, check=True, capture_output=True)
    monkeypatch.setattr(render_diff, "ROOT", repo)

    with pytest.raises(BaseRenderError, match="the base ref 'HEAD' did not render"):
        render_base("HEAD", tmp_path / "render-base")


def _make_build(tree: Path) -> Path:
    """build/dist in `tree` as `make build` writes it (infra.artefacts.pipeline.build: worker wheel, client
    wheel, wheelhouses, publisher.zip, image files, manifest), less the third-party wheels: those are
    downloaded from the package index, which tests/integration/test_build.py exercises. A render must not
    read any of it, so what matters is that the files and the manifest are where `make build` puts them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "runtime_closure", lambda root, environment: {})
        patch.setattr(pipeline, "download_wheels", lambda pins, target, dest: {})
        plan = pipeline.BuildPlan(root=tree, out=tree / "build" / "dist", epoch=1_700_000_000)
        return pipeline.build(plan, report=lambda _: None).out


def _publisher_source(tree: Path) -> Path:
    """The module of the Lambda handler (LAMBDA_HANDLER is module.function), in `tree`."""
    module = LAMBDA_HANDLER.rpartition(".")[0].replace(".", "/")
    for candidate in (tree / f"{module}.py", tree / module / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise AssertionError(f"no source for {LAMBDA_HANDLER} in {tree}")


@dataclass(frozen=True)
class BuiltCheckout:
    built: list[StackDiff]
    """HEAD with `make build` run in it, against HEAD."""
    edited: list[StackDiff]
    """The same checkout after an edit to the publisher (build/dist left from before the edit), against HEAD."""


@pytest.fixture(scope="module")
def built_checkout(tmp_path_factory: pytest.TempPathFactory, against_head: Run) -> BuiltCheckout:
    base_at_head = against_head.base_renders()  # render_base("HEAD"), as the script ran it
    assert against_head.result.returncode == 0, against_head.result.stderr[-2000:]
    tree = _tree_at_head(tmp_path_factory.mktemp("built") / "head")
    dist = _make_build(tree)
    # The build is real and fresh: the manifest holds this source's digest, and the bundle is there.
    assert json.loads((dist / MANIFEST).read_text())["source_digest"] == source_digest(tree)
    assert (dist / PUBLISHER_BUNDLE).is_file()

    def rendered_against_head(render_dir: str) -> list[StackDiff]:
        head = render_tree(tree, tmp_path_factory.mktemp(render_dir))
        assert sorted(head) == STACKS
        return [diff_renders(stack, base_at_head[stack], render) for stack, render in head.items()]

    built = rendered_against_head("render-built")
    handler = _publisher_source(tree)
    handler.write_text(handler.read_text() + "\nSAMPLE_GRACE_SECONDS = 1  # an edit to the publisher's code\n")
    return BuiltCheckout(built, rendered_against_head("render-edited"))


def test_a_checkout_with_build_dist_renders_as_its_commit(built_checkout: BuiltCheckout) -> None:
    # Issue 28: the render read build/dist/publisher.zip when it existed, so `make build` turned
    # "no change" into `code.archive` changes of both Lambdas on every stack.
    for diff in built_checkout.built:
        assert diff.empty, markdown([diff], "HEAD")
    assert markdown(built_checkout.built, "HEAD").splitlines()[2:] == [f"- **{stack}**: no change" for stack in STACKS]


def test_an_edit_to_the_publisher_shows_as_new_code_for_both_lambdas(built_checkout: BuiltCheckout) -> None:
    for diff in built_checkout.edited:
        for function in LAMBDAS:
            # Their code and nothing else (the same bundle serves the publisher and the smoke function).
            assert [path.split(".")[0] for path in diff.changed[function]] == ["code"], diff.stack
        assert (diff.added, diff.removed) == ([], [])
    assert "publisher-fn`: `code.archive" in markdown(built_checkout.edited, "HEAD")
