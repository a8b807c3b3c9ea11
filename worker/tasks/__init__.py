"""Tasks by domain. Each module registers its tasks on `worker.app.app` under explicit names,
so renaming a function never strands messages already queued under the old name."""
