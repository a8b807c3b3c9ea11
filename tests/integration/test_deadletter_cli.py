"""`python -m worker.deadletter list|show|replay|purge`, called in this process (`main(argv)`) against the
session's Redis, one dead-letter queue per test: what each prints, what it leaves in which queue, and its
exit code. The commands as a user types them, against a worker's letters, are in
tests/integration/test_dead_letters.py; these are the paths mutation testing sees."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from typing import Any

import pytest
from celery import Celery
from kombu.exceptions import ContentDisallowed

from tests.support.redis_queues import RedisQueues
from worker.deadletter import cli
from worker.names import PUBLISHED_AT_HEADER
from worker.runtime import dead_letters as deadletter

pytestmark = pytest.mark.redis
MESSAGES = ("deadletter:", "invalid setting")


@pytest.fixture(scope="module", autouse=True)
def _worker_app(queues_redis_url: str) -> None:
    """`replay` sends with the worker's app, which reads its settings and installs its logging when
    first imported: import it once, on the test Redis, before any test captures stderr."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELERY_BROKER_URL", queues_redis_url)
        from worker.app import app  # noqa: PLC0415 - only with the settings above

    assert app.conf.broker_url == queues_redis_url, "worker.app was imported earlier with another broker"


@pytest.fixture
def dlq(redis_queues: RedisQueues, monkeypatch: pytest.MonkeyPatch) -> str:
    name = redis_queues.name("dead")
    monkeypatch.setenv("CELERY_BROKER_URL", redis_queues.url)
    monkeypatch.setenv("CELERY_DEAD_LETTER_QUEUE", name)
    return name


def _add(redis_queues: RedisQueues, dlq: str, **fields: Any) -> dict[str, Any]:
    """Put one dead letter on `dlq` the way the worker does; returns what it was given (its id included).
    Reads leave letters in place (worker.runtime.dead_letter_store), so the queue keeps this order."""
    record = {"reason": "task_failed", "dead_letter_id": uuid.uuid4().hex, **fields}
    app = Celery("t", broker=redis_queues.url, set_as_current=False)
    deadletter.publish(app, record, deadletter.dead_letter_queue(dlq))
    return record


def _task_letter(redis_queues: RedisQueues, dlq: str, source: str | None) -> dict[str, Any]:
    return _add(
        redis_queues,
        dlq,
        task="reports.build",
        task_id=str(uuid.uuid4()),
        source_queue=source,
        args=["r7"],
        kwargs={"force": True},
    )


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    # The command's own messages; stderr also carries the worker's logging (JSON lines, or a logging
    # error when the app was imported under an earlier capture, as mutmut's repeated runs do).
    return code, out.splitlines(), "".join(line for line in err.splitlines(True) if line.startswith(MESSAGES))


def test_list_prints_letters_oldest_first_and_leaves_them(
    redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [_add(redis_queues, dlq, task_id=f"t-{i}", args=[i])["dead_letter_id"] for i in range(3)]
    code, lines, _ = _run(capsys, "list", "--limit", "2", "--json")
    assert code == 0
    assert [json.loads(line)["dead_letter_id"] for line in lines] == ids[:2]
    assert lines[0].startswith('{"args": [0], "dead_letter_id": ')  # keys sorted, one letter a line
    assert redis_queues.depth(dlq) == 3
    code, lines, _ = _run(capsys)  # no command: the short list, up to 100, two lines a letter
    assert code == 0
    # Read in place: a peek leaves the queue as it was, order included.
    assert [line.split()[0] for line in lines[:-1:2]] == ids
    assert [line.split()[2] for line in lines[1:-1:2]] == ["t-0;", "t-1;", "t-2;"]
    assert lines[-1] == f"3 dead letter(s) in {dlq} (they stay in the queue)"
    assert redis_queues.depth(dlq) == 3


def test_list_remove_takes_what_it_printed(
    redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(3):
        _add(redis_queues, dlq, task_id=f"t-{i}")
    code, lines, _ = _run(capsys, "list", "--remove", "--limit", "1", "--json")
    assert (code, len(lines), redis_queues.depth(dlq)) == (0, 1, 2)
    code, lines, _ = _run(capsys, "--remove", "--json")
    assert (code, len(lines), redis_queues.depth(dlq)) == (0, 2, 0)


def test_show_prints_one_letter_whole(redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str]) -> None:
    _add(redis_queues, dlq, task_id="other")
    letter = _add(redis_queues, dlq, task_id="t-1", args=[1], traceback="Traceback ...\nValueError: x\n")
    code, lines, err = _run(capsys, "show", letter["dead_letter_id"])
    assert (code, err) == (0, "")
    shown = json.loads("\n".join(lines))
    assert shown == {**letter, "dead_lettered_at": shown["dead_lettered_at"], "hostname": socket.gethostname()}
    assert lines[:3] == ["{", '  "args": [', "    1"]  # keys sorted, indented
    assert redis_queues.depth(dlq) == 2


def test_show_finds_a_letter_without_a_dead_letter_id_by_its_task_id(
    redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Letters written before `dead_letter_id` existed carry only the task id.
    redis_queues.publish(dlq, {"reason": "task_failed", "task_id": "old-1"}, serializer="json")
    code, lines, _ = _run(capsys, "show", "old-1")
    assert (code, json.loads("\n".join(lines))) == (0, {"reason": "task_failed", "task_id": "old-1"})


def test_show_of_an_unknown_id_exits_1_and_names_it(
    redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _add(redis_queues, dlq, task_id="t-1")
    code, lines, err = _run(capsys, "show", "nope")
    assert (code, lines) == (1, [])
    assert err == f"deadletter: no dead letter with dead-letter id or task id nope in {dlq}\n"
    assert redis_queues.depth(dlq) == 1


def test_replay_sends_the_task_again_to_its_source_queue_then_removes_the_letter(
    redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = redis_queues.name("io")
    kept = _task_letter(redis_queues, dlq, source)
    letter = _task_letter(redis_queues, dlq, source)
    code, lines, err = _run(capsys, "replay", letter["dead_letter_id"])
    assert (code, err) == (0, "")
    assert lines == [f"replayed {letter['dead_letter_id']} (reports.build) to {source}", "replayed 1 dead letter(s)"]
    (sent,) = redis_queues.take(source)
    assert (sent.headers["task"], sent.headers["id"]) == ("reports.build", letter["task_id"])
    assert sent.headers["retries"] == 0
    assert PUBLISHED_AT_HEADER in sent.headers  # queue latency counts from the replay
    args, kwargs, _ = sent.payload
    assert (args, kwargs) == (["r7"], {"force": True})
    for _ in range(2):  # reading leaves it
        assert [r["dead_letter_id"] for r in deadletter.read(redis_queues.url, dlq)] == [kept["dead_letter_id"]]


def test_replay_to_another_queue_and_all(
    redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source, other = redis_queues.name("io"), redis_queues.name("other")
    letters = [_task_letter(redis_queues, dlq, source) for _ in range(2)]
    code, lines, _ = _run(capsys, "replay", "--all", "--to", other)
    assert code == 0
    assert lines[-1] == "replayed 2 dead letter(s)"
    assert sorted(m.headers["id"] for m in redis_queues.take(other)) == sorted(r["task_id"] for r in letters)
    assert (redis_queues.depth(source), redis_queues.depth(dlq)) == (0, 0)


def test_replay_of_a_refused_message_sends_its_original_bytes(
    redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = b'[["x"], {}, {"callbacks": null}]'
    letter = _add(
        redis_queues,
        dlq,
        reason="unknown_task",
        task="reports.new",
        task_id="p-1",
        source_queue=redis_queues.name("io"),
        # As refused: a deploy may since have taught the workers this content type.
        content_type="application/x-yaml",
        content_encoding="binary",
        headers={"task": "reports.new", "id": "p-1", "lang": "py"},
        body_b64=base64.b64encode(body).decode(),
    )
    code, lines, _ = _run(capsys, "replay", letter["dead_letter_id"])
    assert code == 0
    assert lines[0] == f"replayed {letter['dead_letter_id']} (reports.new) to {redis_queues.name('io')}"
    (sent,) = redis_queues.take(redis_queues.name("io"))
    assert sent.body == body
    assert (sent.content_type, sent.content_encoding) == ("application/x-yaml", "binary")
    assert {k: sent.headers[k] for k in ("task", "id", "lang")} == {"task": "reports.new", "id": "p-1", "lang": "py"}
    assert redis_queues.depth(dlq) == 0


def test_replay_dry_run_changes_nothing(
    redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = redis_queues.name("io")
    letter = _task_letter(redis_queues, dlq, source)
    raw = _add(redis_queues, dlq, source_queue=source, body_b64=base64.b64encode(b"x").decode())
    code, lines, _ = _run(capsys, "replay", "--all", "--dry-run")
    assert code == 0
    assert lines == [
        f"would replay {letter['dead_letter_id']} (reports.build) to {source}",
        f"would replay {raw['dead_letter_id']} (raw message) to {source}",
        "would replay 2 dead letter(s)",
    ]
    assert (redis_queues.depth(source), redis_queues.depth(dlq)) == (0, 2)


def test_replay_of_an_unknown_id_replays_the_others_and_exits_1(
    redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = redis_queues.name("io")
    letter = _task_letter(redis_queues, dlq, source)
    code, lines, err = _run(capsys, "replay", "zz-missing", letter["dead_letter_id"], "aa-missing")
    assert code == 1
    assert lines[-1] == "replayed 1 dead letter(s)"
    assert err == f"deadletter: no dead letter with dead-letter id or task id aa-missing, zz-missing in {dlq}\n"
    assert (redis_queues.depth(source), redis_queues.depth(dlq)) == (1, 0)


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ({"task": "reports.build", "source_queue": None}, "has no source queue: give --to QUEUE"),
        ({"task": None, "source_queue": "io"}, "names no task and holds no message to replay"),
    ],
)
def test_a_letter_that_cannot_be_replayed_exits_2_and_stays(
    redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str], record: dict[str, Any], why: str
) -> None:
    letter = _add(redis_queues, dlq, **record)
    code, _, err = _run(capsys, "replay", letter["dead_letter_id"])
    assert code == 2
    assert err == f"deadletter: dead letter {letter['dead_letter_id']} {why}\n"
    assert redis_queues.depth(dlq) == 1


@pytest.mark.parametrize("argv", [["replay"], ["replay", "x", "--all"]])
def test_replay_takes_ids_or_all(dlq: str, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == "python -m worker.deadletter: error: replay takes dead-letter ids or --all (one of the two)"


def test_purge_removes_every_dead_letter_and_nothing_else(
    redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = redis_queues.name("io")
    for _ in range(3):
        _task_letter(redis_queues, dlq, source)
    redis_queues.publish(source, {"not": "a dead letter"}, serializer="json")
    code, lines, _ = _run(capsys, "purge", "--dry-run")
    assert (code, lines, redis_queues.depth(dlq)) == (0, [f"would remove 3 dead letter(s) from {dlq}"], 3)
    code, lines, _ = _run(capsys, "purge")
    assert (code, lines) == (0, [f"removed 3 dead letter(s) from {dlq}"])
    assert (redis_queues.depth(dlq), redis_queues.depth(source)) == (0, 1)


def test_an_invalid_setting_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "http://broker")
    assert cli.main(["purge"]) == 2
    assert capsys.readouterr().err.startswith("invalid setting CELERY_BROKER_URL: ")


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    """`--help` as lines, runs of spaces as one (column widths are argparse's)."""
    with pytest.raises(SystemExit) as exited:
        cli.main([*argv, "--help"])
    assert exited.value.code == 0
    return [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]


def test_help_states_the_commands_and_exit_codes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping
    text = _help(capsys)
    for line in (
        "List, show, replay and purge the dead-letter queue",
        "(broker from CELERY_* settings).",
        "  list                a short list, one letter in two lines; they stay in the queue",
        "  show                print dead letters in full, as JSON",
        "  replay              send dead letters' tasks again, then remove them",
        "  purge               remove every dead letter",
        "  --limit LIMIT       list at most this many (default 100)",
        "  --remove            list and take them off the queue",
        "  python -m worker.deadletter replay ID --to io",
        "  0  done",
        "  1  no dead letter has that id",
        "  2  invalid setting or argument",
        "  3  the broker cannot be reached or refused the credentials",
    ):
        assert " ".join(line.split()) in text, line
    for argv, lines in {
        ("list",): [
            "  --limit LIMIT  at most this many (default 100)",
            "  --remove       and take them off the queue",
            "  --json         JSON lines, every field (for scripts)",
        ],
        ("show",): ["  id          a dead_letter_id, or a task_id (every dead letter of that task)"],
        ("replay",): [
            "  ID          dead_letter_id or task_id of each to replay",
            "  --all       replay every dead letter",
            "  --to QUEUE  replay to this queue instead of the source queue",
            "  --dry-run   say what would be replayed, change nothing",
        ],
        ("purge",): ["  --dry-run   count them, remove nothing"],
    }.items():
        shown = _help(capsys, *argv)
        assert [line for line in lines if " ".join(line.split()) not in shown] == []


def test_the_operations_replay_and_purge_unless_asked_for_a_dry_run(redis_queues: RedisQueues, dlq: str) -> None:
    from worker.app import app  # noqa: PLC0415 - imported by the module fixture
    from worker.deadletter import admin  # noqa: PLC0415

    source = redis_queues.name("io")
    task = _task_letter(redis_queues, dlq, source)
    # A letter without content type or encoding (written by hand, or by an older worker): JSON is assumed.
    raw = _add(redis_queues, dlq, source_queue=source, body_b64=base64.b64encode(b"[[], {}, {}]").decode())
    expected = [
        admin.Replayed(task["dead_letter_id"], "reports.build", source, "task", task["task_id"]),
        admin.Replayed(raw["dead_letter_id"], None, source, "message"),
    ]
    assert admin.replay(app, redis_queues.url, dlq, None, dry_run=True) == expected
    assert (redis_queues.depth(source), redis_queues.depth(dlq)) == (0, 2)
    # The dry run read them in place: the replay finds them in the same order.
    assert admin.replay(app, redis_queues.url, dlq, None) == expected
    (sent,) = [m for m in redis_queues.take(source) if "task" not in m.headers]
    assert (sent.content_type, sent.content_encoding) == ("application/json", "utf-8")
    _task_letter(redis_queues, dlq, source)
    assert admin.purge(redis_queues.url, dlq) == 1
    assert redis_queues.depth(dlq) == 0


def test_a_letter_that_is_not_json_is_refused_not_decoded(
    redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dead-letter queue holds what attackers may have sent; the command never unpickles it."""
    redis_queues.publish(dlq, {"reason": "task_failed"}, serializer="pickle")
    with pytest.raises(ContentDisallowed):
        cli.main(["list"])
    assert redis_queues.depth(dlq) == 1


def test_show_and_replay_find_letters_by_task_id_and_a_task_is_replayed_once(
    redis_queues: RedisQueues, dlq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = redis_queues.name("io")
    first = _task_letter(redis_queues, dlq, source)
    # The same task dead-lettered again (it failed after a replay): a new letter, the same task id.
    again = _add(redis_queues, dlq, task="reports.build", task_id=first["task_id"], source_queue=source, args=["r7"])
    code, lines, err = _run(capsys, "show", first["task_id"])
    assert code == 0
    shown = [json.loads(block) for block in "\n".join(lines).replace("}\n{", "}\0{").split("\0")]
    assert [r["dead_letter_id"] for r in shown] == [first["dead_letter_id"], again["dead_letter_id"]]
    both = f"{first['dead_letter_id']}, {again['dead_letter_id']}"
    assert err == f"deadletter: task {first['task_id']} has 2 dead letters: {both}\n"
    code, lines, _ = _run(capsys, "replay", first["task_id"])
    assert code == 0
    # The oldest letter is sent, the other left (the show before read them in place, in order).
    sent, left = first["dead_letter_id"], again["dead_letter_id"]
    assert lines == [
        f"replayed {sent} (reports.build) to {source}",
        f"left {left}: another dead letter of the same task was replayed; its id replays it",
        "replayed 1 dead letter(s)",
    ]
    assert (redis_queues.depth(source), redis_queues.depth(dlq)) == (1, 1)  # sent once; the other stays
    code, lines, _ = _run(capsys, "replay", left)
    assert (code, lines[-1]) == (0, "replayed 1 dead letter(s)")


def test_an_unreachable_broker_is_one_line_and_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://:secret@127.0.0.1:{port}/0")
    for argv in (["show", "x"], ["list"], ["purge"]):
        assert cli.main(argv) == 3
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err  # one line, no traceback
        where = f"redis://:**@127.0.0.1:{port}/0"
        assert err.startswith(f"deadletter: cannot reach the broker in CELERY_BROKER_URL ({where}): "), err
        assert "secret" not in err


def test_the_short_list_wraps_between_words_and_keeps_ids_whole() -> None:
    record = {
        "dead_letter_id": "d" * 32,
        "task_id": "5d6c1c1e-6f5e-4c55-9a43-1b8f2d3c4e5f",
        "task": "webhooks.deliver",
        "reason": "retries_exhausted",
        "source_queue": "default",
        "dead_lettered_at": 0,
        "error": "HTTPError('HTTP 503 from https://hooks.example.com/a/very/long/path for delivery 42')",
    }
    lines = cli.summary(record, width=80)
    assert all(len(line) <= 80 for line in lines), lines
    text = " ".join(lines)
    for value in (str(record["dead_letter_id"]), str(record["task_id"]), "https://hooks.example.com/a/very/long/path"):
        assert value in text


@pytest.mark.parametrize("argv", [[], ["list"], ["show"], ["replay"], ["purge"]])
def test_help_fits_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    too_wide = [line for line in capsys.readouterr().out.splitlines() if len(line) > 80]
    assert too_wide == []  # a terminal would break these mid-word
