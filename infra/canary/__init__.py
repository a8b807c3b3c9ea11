"""The canary instance refresh as pure rules (no Pulumi): what the workers' log lines count, which counts
judge a new version and when, and the refresh's preferences and steps. The Pulumi program renders them
(infra.components.canary), the deploy step starts the refresh with them (infra.cli.canary_rollout), and
the local twin runs them on its own workers (infra.local.upgrade)."""
