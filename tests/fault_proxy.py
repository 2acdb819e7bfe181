"""A fault-injecting HTTP proxy on 127.0.0.1 for the slow-or-flaky-server tests.

Every request waits ``latency`` seconds, then, with probability ``failure_rate``, fails: an HTTP
500, an HTTP 503 or a reset connection (RST, no answer), each equally likely, and half of them
only after the request reached the real server (the answer is lost, as on a real network). The
rest are relayed to ``upstream`` unchanged. Seeded, so a run is repeatable; ``counts`` says what
happened.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FaultProxy"]

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class _ResetError(Exception):
    """The connection was reset on purpose: nothing more to send."""


class FaultProxy:
    """``with FaultProxy(upstream, latency=2.0, failure_rate=0.2) as proxy: ... proxy.uri``."""

    def __init__(
        self, upstream: str, latency: float = 0.0, failure_rate: float = 0.0, seed: int = 0
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.latency, self.failure_rate = latency, failure_rate
        self.counts: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _fault(self) -> tuple[str | None, bool]:
        """The fault for the next request (None for none), and whether it strikes after relaying."""
        with self._lock:
            self.counts["requests"] += 1
            if self._random.random() >= self.failure_rate:
                return None, False
            fault = self._random.choice(["500", "503", "reset"])
            after = self._random.random() < 0.5
            self.counts[f"{fault} {'after' if after else 'before'} relaying"] += 1
            return fault, after

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(proxy.latency)
                fault, after = proxy._fault()
                if fault is not None and after:
                    self.forward(body)  # the server does the work; its answer is lost
                if fault == "reset":
                    self.reset()
                if fault is not None:
                    self.answer(int(fault), [("Content-Type", "text/plain")], b"injected fault")
                    return
                self.answer(*self.forward(body))

            def forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                connection = http.client.HTTPConnection(*proxy.upstream, timeout=300)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS
                    }
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                    kept = [
                        (k, v) for k, v in response.getheaders() if k.lower() not in HOP_HEADERS
                    ]
                    return response.status, kept, data
                finally:
                    connection.close()

            def answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def reset(self) -> None:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True
                raise _ResetError

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = relay  # noqa: N815

        return Handler
