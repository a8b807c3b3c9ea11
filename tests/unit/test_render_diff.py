"""The render diff the pull-request job posts: added, removed and changed resources by input path."""

from __future__ import annotations

from infra.cli.render_comparison import diff_renders, markdown


def _render(*resources: tuple[str, str, dict[str, object]]) -> dict[str, object]:
    return {
        "stack": "dev",
        "resources": [{"type": t, "name": n, "parent": None, "inputs": i} for t, n, i in resources],
        "outputs": {"dashboardUrl": "https://x"},
    }


def test_added_removed_changed() -> None:
    base = _render(
        ("aws:autoscaling/group:Group", "pool-default-asg", {"maxSize": 4, "tags": [{"key": "a"}]}),
        ("aws:sns/topic:Topic", "alarms", {"name": "t"}),
    )
    head = _render(
        ("aws:autoscaling/group:Group", "pool-default-asg", {"maxSize": 8, "tags": [{"key": "b"}]}),
        ("aws:sqs/queue:Queue", "new", {}),
    )
    d = diff_renders("dev", base, head)
    assert d.added == ["aws:sqs/queue:Queue new"]
    assert d.removed == ["aws:sns/topic:Topic alarms"]
    assert d.changed == {"aws:autoscaling/group:Group pool-default-asg": ["maxSize", "tags[0].key"]}
    text = markdown([d], "origin/main")
    assert "### dev: +1 -1 ~1" in text
    assert "`maxSize`, `tags[0].key`" in text


def test_identical_renders_say_no_change_and_a_missing_base_adds_everything() -> None:
    render = _render(("aws:sns/topic:Topic", "alarms", {"name": "t"}))
    assert "- **dev**: no change" in markdown([diff_renders("dev", render, render)], "main")
    assert diff_renders("dev", None, render).added == ["aws:sns/topic:Topic alarms"]
