"""Certificate files for a broker that serves TLS only (the tests' stand-in for ElastiCache and Amazon MQ).

The servers take paths; who made the certificates (a throwaway CA in the tests) is not their concern.
Clients find the CA the way they would on an instance: in the system store, which OpenSSL (and so
Python's `ssl.create_default_context`, redis-py, py-amqp and httpx) reads from `SSL_CERT_FILE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    """The CA bundle (PEM) that signed `cert`: what a client must trust."""
    cert: Path
    """The server's certificate chain (PEM), for `localhost` and 127.0.0.1."""
    key: Path
    """The server's private key (PEM)."""
