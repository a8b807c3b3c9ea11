"""A stack config with two bad keys, which every path that validates a stack must name one line each."""

from __future__ import annotations

TWO_BAD_KEYS = {"brokerEngine": "memcached", "egress": "carrier-pigeon"}
