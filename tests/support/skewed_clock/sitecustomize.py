"""A host clock that is off, for one Python process (a faketime-like shim for the scheduler tests).

A process started with this directory first on PYTHONPATH and `CELERY_CLUSTER_TEST_CLOCK_OFFSET_S`
set (seconds, may be negative) sees `time.time()` and `time.time_ns()` shifted by that much, as on
a host whose clock is that far off: the scheduler's own code, Celery's and kombu's alike. Python
imports `sitecustomize` at start-up (https://docs.python.org/3/library/site.html), before any of
them. The monotonic clock is left alone, as a wall-clock step leaves it alone on a real host;
`datetime.now()` reads the C clock directly and is not shifted (the scheduler uses neither for slots).
"""

import os
import time

_offset = float(os.environ.get("CELERY_CLUSTER_TEST_CLOCK_OFFSET_S", "0") or 0)
if _offset:
    _time, _time_ns = time.time, time.time_ns
    time.time = lambda: _time() + _offset
    time.time_ns = lambda: _time_ns() + int(_offset * 1e9)
