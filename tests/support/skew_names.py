"""The task name of the version-skew test, apart from its module (which imports the worker app)."""

NEW_TASK = "invoices.send_v2"
