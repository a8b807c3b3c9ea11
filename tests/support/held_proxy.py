"""A loopback TCP proxy that can hold back what one client sends, to pin a pause exactly where a test
wants it (the scheduler fault tests).

Armed with a marker (bytes), the proxy forwards everything until a client's data contains the
marker, then keeps that chunk and everything after it on that connection until `release()`.
Seen from the broker, the client has not sent yet; seen from the client, its call is under way.
That is the window "checked the lease, has not published yet" that a pause (SIGSTOP, GC, VM steal)
opens at random: the test stops the process inside it, lets a successor take over, then resumes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

from infra.servers.ports import free_port


class HeldProxy:
    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = ("127.0.0.1", target_port)
        self._markers: tuple[bytes, ...] = ()
        self.held = threading.Event()  # set once a marked chunk is held
        self.held_data = b""  # that chunk
        self._release = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def arm(self, *markers: bytes) -> None:
        """Hold the next chunk a client sends that contains every one of `markers` (and what follows it
        on that connection)."""
        self.held.clear()
        self._release.clear()
        self.held_data = b""
        self._markers = markers

    def release(self) -> None:
        """Forward what was held, and everything after it, from now on (the proxy is disarmed)."""
        self._markers = ()
        self._release.set()

    def close(self) -> None:
        self._closed.set()
        self._release.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> HeldProxy:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                markers = self._markers
                if upstream and markers and all(m in data for m in markers) and not self.held.is_set():
                    self.held_data = data
                    self.held.set()
                    self._release.wait()
                    if self._closed.is_set():
                        break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
