"""A task that only the "new" workers of the version-skew test know (CELERY_IMPORTS names this module).

The old workers, started without it, meet its name as an unknown task; the new ones run it."""

from __future__ import annotations

from tests.support.skew_names import NEW_TASK
from worker.app import app


@app.task(name=NEW_TASK)
def send_v2(invoice_id: str) -> str:
    return invoice_id
