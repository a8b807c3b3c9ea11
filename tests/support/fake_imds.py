"""A real HTTP server on loopback that answers like IMDSv2, token handshake included.

`PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (1..21600) returns a token;
every `GET` must carry a live token in `X-aws-ec2-metadata-token` or gets 401, as on an instance
that requires IMDSv2. Items that are not set answer 404, as `spot/instance-action` does until
EC2 decides to interrupt the instance.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from worker.instance import imds


@dataclass
class ImdsState:
    items: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    token_requests: int = 0
    rejected: list[str] = field(default_factory=list)  # "METHOD path: reason"
    reads: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, path: str, value: str | None) -> None:
        with self.lock:
            if value is None:
                self.items.pop(path, None)
            else:
                self.items[path] = value

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()


def _handler(state: ImdsState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: str = "") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            if self.path != imds.TOKEN_PATH:
                self._send(404)
                return
            ttl = self.headers.get(imds.TOKEN_TTL_HEADER, "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                with state.lock:
                    state.rejected.append(f"PUT {self.path}: bad TTL header {ttl!r}")
                self._send(400)
                return
            token = secrets.token_urlsafe(32)
            with state.lock:
                state.token_requests += 1
                state.tokens[token] = time.monotonic() + int(ttl)
            self._send(200, token)

        def do_GET(self) -> None:
            token = self.headers.get(imds.TOKEN_HEADER)
            with state.lock:
                valid = token is not None and state.tokens.get(token, 0.0) > time.monotonic()
                if not valid:
                    state.rejected.append(f"GET {self.path}: {'no' if token is None else 'invalid'} token")
                else:
                    state.reads.append(self.path)
                value = state.items.get(self.path)
            if not valid:
                self._send(401)
            elif value is None:
                self._send(404)
            else:
                self._send(200, value)

    return Handler


@contextmanager
def fake_imds(
    instance_id: str = "i-0123456789abcdef0", region: str = "eu-west-1", asg_name: str | None = None
) -> Iterator[tuple[str, ImdsState]]:
    """Yield (endpoint URL, state) for an IMDSv2 server on a free loopback port."""
    state = ImdsState()
    state.set(imds.INSTANCE_ID_PATH, instance_id)
    state.set(imds.REGION_PATH, region)
    state.set(imds.LIFECYCLE_STATE_PATH, "InService")
    if asg_name is not None:
        state.set(imds.ASG_TAG_PATH, asg_name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
