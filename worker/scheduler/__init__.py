"""The periodic task scheduler: the project's schedule (`schedule`), what an entry is (`periodic`), the
lease store (`lease`) and `celery beat` with a lease (`beat`).
"""
