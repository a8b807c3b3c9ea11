"""`python -m worker.deadletter`: list, show, replay and purge the dead-letter queue."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

from amqp.exceptions import AMQPError
from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url
from redis.exceptions import RedisError

from worker.deadletter import admin
from worker.runtime.broker_errors import refusal_reason
from worker.runtime.dead_letters import read
from worker.runtime.settings import SettingsError, load_settings

NOT_FOUND_EXIT = 1
USAGE_EXIT = 2
BROKER_EXIT = 3
# What a broker that cannot be reached or refuses us raises: kombu's own error, or the client library's
# (redis-py, py-amqp) or the socket's, depending on where the connection failed.
BROKER_ERRORS = (OperationalError, RedisError, AMQPError, OSError)

EPILOG = """\
examples:
  python -m worker.deadletter                   a short list (they stay)
  python -m worker.deadletter list --json       as JSON lines, for scripts
  python -m worker.deadletter show ID           one in full, with its traceback
  python -m worker.deadletter replay ID --dry-run
  python -m worker.deadletter replay --all      every one, to its source queue
  python -m worker.deadletter replay ID --to io
  python -m worker.deadletter purge --dry-run   count what purge would remove

ID is a dead-letter id or a task id: the worker logs both
("dead-lettered <task id> as <dead-letter id>").

exit codes:
  0  done
  1  no dead letter has that id
  2  invalid setting or argument
  3  the broker cannot be reached or refused the credentials"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m worker.deadletter",
        description="List, show, replay and purge the dead-letter queue\n(broker from CELERY_* settings).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    _list_options(parser, "list at most this many (default 100)", "list and take them off the queue")
    commands = parser.add_subparsers(dest="command")
    listing = commands.add_parser("list", help="a short list, one letter in two lines; they stay in the queue")
    _list_options(listing, "at most this many (default 100)", "and take them off the queue")
    one = commands.add_parser("show", help="print dead letters in full, as JSON")
    one.add_argument("id", help="a dead_letter_id, or a task_id (every dead letter of that task)")
    again = commands.add_parser("replay", help="send dead letters' tasks again, then remove them")
    again.add_argument("ids", nargs="*", metavar="ID", help="dead_letter_id or task_id of each to replay")
    again.add_argument("--all", action="store_true", help="replay every dead letter")
    again.add_argument("--to", metavar="QUEUE", help="replay to this queue instead of the source queue")
    again.add_argument("--dry-run", action="store_true", help="say what would be replayed, change nothing")
    purging = commands.add_parser("purge", help="remove every dead letter")
    purging.add_argument("--dry-run", action="store_true", help="count them, remove nothing")
    return parser


def _list_options(parser: argparse.ArgumentParser, limit: str, remove: str) -> None:
    parser.add_argument("--limit", type=int, default=100, help=limit)
    parser.add_argument("--remove", action="store_true", help=remove)
    parser.add_argument("--json", action="store_true", help="JSON lines, every field (for scripts)")


def _not_found(ids: list[str], queue: str) -> int:
    print(f"deadletter: no dead letter with dead-letter id or task id {', '.join(ids)} in {queue}", file=sys.stderr)
    return NOT_FOUND_EXIT


def _show(options: argparse.Namespace, url: str, queue: str) -> int:
    records = admin.show(url, queue, options.id)
    if not records:
        return _not_found([options.id], queue)
    for record in records:
        print(json.dumps(record, sort_keys=True, indent=2))
    if len(records) > 1:
        ids = ", ".join(admin.letter_id(r) for r in records)
        print(f"deadletter: task {options.id} has {len(records)} dead letters: {ids}", file=sys.stderr)
    return 0


def _replayed(verb: str) -> Callable[[admin.Replayed], None]:
    def say(r: admin.Replayed) -> None:
        if r.how == admin.LEFT:
            print(f"left {r.dead_letter_id}: another dead letter of the same task was replayed; its id replays it")
        else:
            print(f"{verb} {r.dead_letter_id} ({r.task or 'raw message'}) to {r.queue}")

    return say


def _replay(options: argparse.Namespace, url: str, queue: str) -> int:
    # Imported here, not at the top: importing the app reads and checks the worker's whole environment,
    # which list, show and purge do not need; replay sends with the worker's app so it stamps and routes.
    from worker.app import app  # noqa: PLC0415

    wanted = None if options.all else set(options.ids)
    verb = "would replay" if options.dry_run else "replayed"
    try:
        done = admin.replay(app, url, queue, wanted, options.to, options.dry_run, _replayed(verb))
    except admin.ReplayError as exc:
        print(f"deadletter: {exc}", file=sys.stderr)
        return USAGE_EXIT
    print(f"{verb} {sum(1 for r in done if r.how != admin.LEFT)} dead letter(s)")
    found = {i for r in done for i in (r.dead_letter_id, r.task_id) if i}
    missing = sorted((wanted or set()) - found)
    return _not_found(missing, queue) if missing else 0


def _purge(options: argparse.Namespace, url: str, queue: str) -> int:
    count = admin.purge(url, queue, options.dry_run)
    print(f"{'would remove' if options.dry_run else 'removed'} {count} dead letter(s) from {queue}")
    return 0


def _ago(at: Any) -> str:
    if not isinstance(at, int | float):
        return "at an unknown time"
    seconds = max(time.time() - at, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def summary(record: dict[str, Any], width: int = 80) -> list[str]:
    """One dead letter for a human: its ids, task, reason, source queue and age, then the error; wrapped at
    `width` between words (an id is never split)."""
    first = (
        f"{admin.letter_id(record)}  {record.get('task') or 'raw message'}  {record.get('reason', '?')}  "
        f"from {record.get('source_queue') or '?'}, {_ago(record.get('dead_lettered_at'))}"
    )
    second = f"task id {record.get('task_id') or '-'}; {record.get('error') or 'no error recorded'}"
    wrap = textwrap.TextWrapper(width=width, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False)
    return [*wrap.wrap(first), *wrap.wrap("  " + second)]


def _list(options: argparse.Namespace, url: str, queue: str) -> int:
    records = read(url, queue, limit=options.limit, remove=options.remove)
    if options.json:
        for record in records:
            print(json.dumps(record, sort_keys=True))
        return 0
    width = shutil.get_terminal_size().columns
    for record in records:
        print("\n".join(summary(record, width)))
    left = "removed" if options.remove else "they stay in the queue"
    print(f"{len(records)} dead letter(s) in {queue}{' shown' if len(records) == options.limit else ''} ({left})")
    return 0


def _broker_error(exc: BaseException, url: str) -> int:
    """One line for a broker that cannot be reached or refuses us, instead of a traceback."""
    where = maybe_sanitize_url(url)
    reason = refusal_reason(exc)
    if reason is not None:
        problem = f"the broker refused the credentials in CELERY_BROKER_URL ({where}): {reason}"
    else:
        problem = f"cannot reach the broker in CELERY_BROKER_URL ({where}): {exc}"
    print(f"deadletter: {problem}", file=sys.stderr)
    return BROKER_EXIT


def main(argv: list[str] | None = None) -> int:
    """`python -m worker.deadletter`: list, show, replay and purge dead letters."""
    parser = _parser()
    options = parser.parse_args(argv)
    if options.command == "replay" and bool(options.ids) == bool(options.all):
        parser.error("replay takes dead-letter ids or --all (one of the two)")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"invalid setting {exc}", file=sys.stderr)
        return USAGE_EXIT
    command = {"show": _show, "replay": _replay, "purge": _purge}.get(options.command, _list)
    try:
        return command(options, settings.broker_url, settings.dead_letter_queue)
    except BROKER_ERRORS as exc:
        return _broker_error(exc, settings.broker_url)
