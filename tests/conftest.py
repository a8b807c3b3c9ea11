"""Shared fixtures live in tests/support; this file only registers them."""

pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.tls_brokers",
    "tests.support.redis_queues",
    "tests.support.moto_metrics",
    "tests.support.built",
]
