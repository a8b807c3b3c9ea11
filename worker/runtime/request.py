"""The task base class and request class every task of this package uses.

`CancelSafeRequest` fixes a task loss found by the broker-restart fault test on Redis
(tests/integration/test_worker_faults.py): when the broker connection drops, Celery cancels the
running late-ack tasks so they can be redelivered. Cancelling first writes a RETRY state to the
result backend; on a Redis broker that backend is the same Redis, which is down at that moment,
so the write raised before the request was marked cancelled. The pool child then died of the
cancel's SIGTERM, Celery took that for a revoke, and a revoke acks the message: the task was
gone from the queue and never ran. Marking the request cancelled first (and tolerating a backend
that is down) keeps the message unacked, so it is redelivered.

It is also where a second copy of a periodic run is refused (`worker.runtime.periodic_fence`): Celery
asks `revoked()` just before it hands a task to the pool, in every pool.
"""

from __future__ import annotations

import logging

from celery import Task
from celery.worker.request import Request
from celery.worker.state import task_ready

from worker.runtime import periodic_fence

logger = logging.getLogger(__name__)


class CancelSafeRequest(Request):  # type: ignore[misc]
    def _announce_cancelled(self, emit_retry: bool = True) -> None:
        self._already_cancelled = True
        try:
            super()._announce_cancelled(emit_retry=emit_retry)
        except Exception:
            # The state write is advisory; the message stays unacked and will be redelivered.
            logger.warning("could not record the cancellation of %s; it will be redelivered", self.id, exc_info=True)

    def revoked(self) -> bool:
        if super().revoked():
            return True
        if getattr(self, "_fence_refused", None) is None:
            self._fence_refused = not periodic_fence.admits(self.id, self._request_dict)
            if self._fence_refused:
                # As Celery skips a revoked task, without marking the run revoked in the result
                # backend: the copy that started owns the run's result.
                task_ready(self)
                self.acknowledge()
                self._already_revoked = True
        return bool(self._fence_refused)


class BaseTask(Task):  # type: ignore[misc]
    """Base of every task in `worker.tasks` (set as the app's task class)."""

    Request = CancelSafeRequest
