"""scripts/render-diff and the renders it compares, on real trees: this commit against itself, a changed
stack file, and a base that does not render (the pure diff is in tests/unit/test_render_diff.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra import render_diff
from infra.render_diff import BaseRenderError, diff_renders, markdown, render_base, render_tree

ROOT = Path(__file__).resolve().parents[2]


def test_render_diff_against_this_commit_reports_no_change(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "render-diff"), "--base", "HEAD", "--out", str(tmp_path / "render")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # Uncommitted edits to the program would show up here; on a clean checkout every stack is unchanged:
    # one "no change" line per stack, and no stack heading (a heading is what a changed stack gets).
    stacks = sorted(p.stem for p in (tmp_path / "render").glob("*.json"))
    assert stacks == ["dev", "prod", "staging"]
    summary = result.stdout[result.stdout.index("## Render diff against `HEAD`") :]
    assert summary.split("\n")[2:5] == [f"- **{stack}**: no change" for stack in stacks], summary
    assert "### " not in summary, summary


def _tree_at_head(dest: Path) -> Path:
    """This commit's files in `dest` (not a worktree: edits there never touch the repository)."""
    dest.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def test_a_changed_max_size_is_reported_against_the_base(tmp_path: Path) -> None:
    head_tree = _tree_at_head(tmp_path / "head")
    config = head_tree / "Pulumi.dev.yaml"
    assert "      maxSize: 3\n" in config.read_text()
    config.write_text(config.read_text().replace("      maxSize: 3\n", "      maxSize: 4\n", 1))

    head = render_tree(head_tree, tmp_path / "render")
    base = render_base("HEAD", tmp_path / "render-base")
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
