"""Example periodic task: one run fans out into many tasks on the queue it came from.

The shape of a nightly export or a sweep: the scheduler sends one small task, which sends the
real work. Its entry in `worker.scheduler.schedule` says how many tasks a run starts (`expect_tasks`), so
the Pulumi program scales the receiving pool before the run instead of after its queue grew.
"""

from __future__ import annotations

from celery import Task

from worker.app import app

# Sent per publish call: one producer connection, no per-task connection set-up.
FAN_OUT_LIMIT = 100_000


@app.task(name="cluster.fan_out", bind=True)
def fan_out(self: Task, count: int, seconds: float) -> int:
    """Send `count` `cluster.sleep(seconds)` tasks to this task's own queue; return how many."""
    if not 0 <= count <= FAN_OUT_LIMIT:
        raise ValueError(f"count must be within [0, {FAN_OUT_LIMIT}], got {count}")
    queue = (self.request.delivery_info or {}).get("routing_key") or app.conf.task_default_queue
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            app.send_task("cluster.sleep", args=[seconds], queue=queue, producer=producer)
    return count
