"""A real webhook receiver for tests: a small threaded HTTP server on 127.0.0.1 that records
every request and answers with the status a test chooses. It lives at most ``MAX_LIFE``
seconds, and stops when its ``with`` block ends."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import standardwebhooks

MAX_LIFE = 120.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: str

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verify(self, secret: str) -> Any:
        """The payload, once ``standardwebhooks`` has checked its signature (raises if not)."""
        return standardwebhooks.Webhook(secret).verify(self.body, self.headers)


class Receiver:
    def __init__(self, answer: Callable[[Received], int] | None = None) -> None:
        self.answer = answer or (lambda _r: 200)
        self.got: list[Received] = []
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self, port: int = 0) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length).decode()
                r = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver.lock:
                    receiver.got.append(r)
                status = receiver.answer(r)
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(MAX_LIFE, self.stop)  # bounded life, whatever happens
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def sequences(self) -> list[int]:
        import json

        with self.lock:
            return [json.loads(r.body)["sequence"] for r in self.got]


@contextmanager
def receiver(answer: Callable[[Received], int] | None = None) -> Iterator[Receiver]:
    r = Receiver(answer)
    r.start()
    try:
        yield r
    finally:
        r.stop()
