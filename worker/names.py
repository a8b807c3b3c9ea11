"""Names shared by the worker, the metrics publisher and the Pulumi program.

`infra` imports these so that a queue, header or metric is spelt in one place.
"""

from typing import Final

from celery_cluster_client.contract import DEFAULT_QUEUE as DEFAULT_QUEUE  # noqa: PLC0414 - re-export
from celery_cluster_client.contract import PUBLISHED_AT_HEADER as PUBLISHED_AT_HEADER  # noqa: PLC0414 - re-export

DEAD_LETTER_QUEUE: Final = "dead_letter"

# DEFAULT_QUEUE and PUBLISHED_AT_HEADER (seconds since the epoch, float; queue latency is the age
# of the oldest waiting message) are the producer client's: producers and workers share them.

# Header on dead-lettered messages that says why the message was dead-lettered.
DEAD_LETTER_REASON_HEADER: Final = "x-dead-letter-reason"

# Header of a message whose envelope the worker's transport could not read (worker.runtime.redis_take):
# the value says what was wrong; the consumer dead-letters such a message with reason malformed_envelope.
MALFORMED_HEADER: Final = "x-celery-cluster-malformed"

# CloudWatch namespace and metric names the publisher writes and the alarms/policies read.
METRIC_NAMESPACE_PREFIX: Final = "CeleryCluster"
METRIC_WAITING: Final = "QueueWaiting"
METRIC_IN_FLIGHT: Final = "QueueInFlight"
METRIC_OLDEST_AGE: Final = "QueueOldestMessageAge"
METRIC_BACKLOG: Final = "PoolBacklog"
METRIC_BACKLOG_PER_INSTANCE: Final = "PoolBacklogPerInstance"
METRIC_PUBLISHER_HEARTBEAT: Final = "PublisherHeartbeat"
# Per queue: waiting messages without a publish stamp among those the publisher reads (worker.publisher.unstamped).
METRIC_UNSTAMPED: Final = "QueueUnstampedWaiting"
# Per pool: queues with waiting messages whose age the publisher could not tell (no age datum).
METRIC_QUEUES_WITHOUT_AGE: Final = "PoolQueuesWithoutAge"

# Written by the publisher (from what the workers record in the broker) at 10-second resolution:
# the pool's measured mean task run time (seconds) over its recent window, absent until a task ends.
METRIC_TASK_SECONDS: Final = "PoolTaskSeconds"
# Tasks running now on the pool's workers (not prefetched ones): busy worker processes.
METRIC_BUSY_PROCESSES: Final = "PoolBusyProcesses"
# The pool group's InService instance count, read by the publisher every sample so that scaling
# math divides by a high-resolution number (AWS/AutoScaling group metrics arrive once a minute).
METRIC_IN_SERVICE: Final = "PoolInServiceInstances"

# Written by the publisher every sample, from `worker.publisher.capacity` (the capacity rule the simulator
# and the local twin run too); the pool's scaling policies read one of these each, no metric math.
# CapacityNeeded: the factor by which in-service capacity falls short (1 = enough); no datum while no
# instance is in service.
METRIC_CAPACITY_NEEDED: Final = "PoolCapacityNeeded"
# The load with one instance fewer (scale-in while it stays under a threshold); 1000 with one or none.
METRIC_LOAD_WITH_ONE_FEWER: Final = "PoolLoadWithOneFewer"
# With no instance in service: the instances the backlog needs (0 otherwise); scale-out from zero reads it.
METRIC_NEEDED_AT_ZERO: Final = "PoolInstancesNeededAtZero"

# Written by the periodic task scheduler that holds the lease (worker.scheduler.beat), once per renewal:
# 1 per renewal (no data at all means no scheduler holds the lease), and per entry (dimension
# `Entry`) the seconds its next run is past due without having been sent.
METRIC_SCHEDULER_HEARTBEAT: Final = "SchedulerHeartbeat"
METRIC_ENTRY_LATENESS: Final = "PeriodicEntryLateness"

# Log events the worker and the drain agent write (one JSON line each, with the process's `version` and
# `pool`: worker.runtime.logs). The pool's CloudWatch Logs metric filters count them into the metrics
# below, per code version (infra.components.canary), which a canary instance refresh judges.
EVENT_TASK_FINISHED: Final = "task.finished"
"""A task run ended; its `outcome` is success, failure or retry (Celery's state, lower case)."""
EVENT_TASK_RETRY: Final = "task.retry"
EVENT_DEAD_LETTERED: Final = "task.dead_lettered"
"""A dead letter was written; its `reason` is one of worker.runtime.dead_letters.REASON_*."""
EVENT_UNHEALTHY: Final = "health.unhealthy"
"""The drain agent marked its instance unhealthy: the worker cannot start (or died for good)."""

# Metrics of those events (dimensions Pool and Version, UnknownTaskLetters Pool only).
METRIC_TASKS_FINISHED: Final = "TasksFinished"
METRIC_TASK_FAILURES: Final = "TaskFailures"
METRIC_TASK_RETRIES: Final = "TaskRetries"
METRIC_DEAD_LETTERS: Final = "DeadLetters"
METRIC_UNKNOWN_TASK_LETTERS: Final = "UnknownTaskLetters"
METRIC_WORKERS_UNHEALTHY: Final = "WorkersUnhealthy"
