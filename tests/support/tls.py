"""A throwaway CA and server certificates, written as PEM files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import trustme

from infra.servers.tls import TlsFiles

# kombu connects to `localhost` as 127.0.0.1 and then checks that name (kombu/transport/pyamqp.py),
# redis-py checks `localhost`: the test brokers' certificates name both.
SERVER_NAMES = ("localhost", "127.0.0.1")


def make_tls_files(directory: Path, ca: trustme.CA | None = None, names: Sequence[str] = SERVER_NAMES) -> TlsFiles:
    """A server certificate for `names` signed by `ca` (a new CA when None); the CA bundle is `ca.pem`."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = ca if ca is not None else trustme.CA()
    issued = authority.issue_cert(*names)
    files = TlsFiles(ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key")
    authority.cert_pem.write_to_path(str(files.ca))
    # The whole chain (leaf first): servers send it, clients verify it up to the CA.
    files.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(files.key))
    files.key.chmod(0o600)
    return files
