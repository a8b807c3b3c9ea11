"""A throwaway CA and a server certificate for `localhost` / 127.0.0.1, written as PEM files."""

from __future__ import annotations

from pathlib import Path

import trustme

from infra.local.tls import TlsFiles

SERVER_NAMES = ("localhost", "127.0.0.1")


def make_tls_files(directory: Path, ca: trustme.CA | None = None) -> TlsFiles:
    """A server certificate signed by `ca` (a new CA when None); the CA bundle is `ca.pem`."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = ca if ca is not None else trustme.CA()
    issued = authority.issue_cert(*SERVER_NAMES)
    files = TlsFiles(ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key")
    authority.cert_pem.write_to_path(str(files.ca))
    # The whole chain (leaf first): servers send it, clients verify it up to the CA.
    files.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(files.key))
    files.key.chmod(0o600)
    return files
