"""`python -m worker.deadletter`: list, show, replay and purge the dead-letter queue."""

from __future__ import annotations

import argparse
import json
import sys

from worker.deadletter import admin
from worker.runtime.dead_letters import read
from worker.runtime.settings import SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m worker.deadletter",
        description="List, show, replay and purge the dead-letter queue (broker from CELERY_* settings).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  python -m worker.deadletter                       list up to 100 as JSON lines (they stay)
  python -m worker.deadletter show 3f2a...          one in full, with its traceback
  python -m worker.deadletter replay 3f2a... --dry-run
  python -m worker.deadletter replay --all          every one, to its source queue
  python -m worker.deadletter replay 3f2a... --to io
  python -m worker.deadletter purge --dry-run       count what purge would remove

exit codes:
  0  done
  1  no dead letter has that id
  2  invalid setting or argument""",
    )
    parser.add_argument("--limit", type=int, default=100, help="list at most this many (default 100)")
    parser.add_argument("--remove", action="store_true", help="list and take them off the queue")
    commands = parser.add_subparsers(dest="command")
    listing = commands.add_parser("list", help="print dead letters as JSON lines; they stay in the queue")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--remove", action="store_true", help="and take them off the queue")
    one = commands.add_parser("show", help="print one dead letter in full")
    one.add_argument("id", help="its dead_letter_id (or task_id)")
    again = commands.add_parser("replay", help="send dead letters' tasks again, then remove them")
    again.add_argument("ids", nargs="*", metavar="ID", help="dead_letter_id (or task_id) of each to replay")
    again.add_argument("--all", action="store_true", help="replay every dead letter")
    again.add_argument("--to", metavar="QUEUE", help="replay to this queue instead of the source queue")
    again.add_argument("--dry-run", action="store_true", help="say what would be replayed, change nothing")
    purging = commands.add_parser("purge", help="remove every dead letter")
    purging.add_argument("--dry-run", action="store_true", help="count them, remove nothing")
    return parser


def _show(options: argparse.Namespace, url: str, queue: str) -> int:
    record = admin.show(url, queue, options.id)
    if record is None:
        print(f"deadletter: no dead letter with id {options.id} in {queue}", file=sys.stderr)
        return 1
    print(json.dumps(record, sort_keys=True, indent=2))
    return 0


def _replay(options: argparse.Namespace, url: str, queue: str) -> int:
    # Imported here, not at the top: importing the app reads and checks the worker's whole environment,
    # which list, show and purge do not need; replay sends with the worker's app so it stamps and routes.
    from worker.app import app  # noqa: PLC0415

    wanted = None if options.all else set(options.ids)
    verb = "would replay" if options.dry_run else "replayed"
    try:
        done = admin.replay(
            app, url, queue, wanted, options.to, options.dry_run,
            lambda r: print(f"{verb} {r.dead_letter_id} ({r.task or 'raw message'}) to {r.queue}"),
        )  # fmt: skip
    except admin.ReplayError as exc:
        print(f"deadletter: {exc}", file=sys.stderr)
        return 2
    print(f"{verb} {len(done)} dead letter(s)")
    missing = sorted((wanted or set()) - {r.dead_letter_id for r in done})
    if missing:
        print(f"deadletter: no dead letter with id {', '.join(missing)} in {queue}", file=sys.stderr)
        return 1
    return 0


def _purge(options: argparse.Namespace, url: str, queue: str) -> int:
    count = admin.purge(url, queue, options.dry_run)
    print(f"{'would remove' if options.dry_run else 'removed'} {count} dead letter(s) from {queue}")
    return 0


def _list(options: argparse.Namespace, url: str, queue: str) -> int:
    for record in read(url, queue, limit=options.limit, remove=options.remove):
        print(json.dumps(record, sort_keys=True))
    return 0


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
        return 2
    command = {"show": _show, "replay": _replay, "purge": _purge}.get(options.command, _list)
    return command(options, settings.broker_url, settings.dead_letter_queue)
