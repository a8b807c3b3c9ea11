"""The Celery runtime on every worker VM: settings, configuration, consumer, task base, logs, shutdown,
and what the workers record (journal, task time, busy files).
"""
