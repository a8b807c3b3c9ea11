"""Task names removed on purpose, each with why no message can still need it.

`scripts/check-task-names` (the pull-request check) fails when a change removes or renames a task
whose name is still routed, scheduled or seen in the queues' recent traffic, unless the old name
stays registered as an alias (docs/worker.md, "Renaming a task") or is listed here. List a name
here only once nothing sends it: no producer release, no periodic entry, no queued or dead-lettered
message (`python -m worker.deadletter` shows the last). Not imported by the worker: the check reads it.
"""

from typing import Final

RETIRED: Final[dict[str, str]] = {
    # "invoices.send": "renamed to invoices.send_v2 in 1.4; the alias went in 1.5, no sender since 2026-01-10",
}
