"""The webhook dispatcher's HTTP transport: POSTs a :class:`~workflow.webhooks_dispatch.Request`
to the address the dispatcher checked, over kept-alive HTTP/1.1 connections.

It connects to ``target.address`` - the address :func:`workflow.webhooks_urls.resolve` judged,
never a fresh DNS answer (DNS rebinding) - while the ``Host`` header and, for ``https``, the TLS
server name and certificate check use the host as written in the URL. Connections are kept per
(scheme, host, address, port), so a kept TLS connection is never reused for another name, and
no proxy from the environment is ever used. Redirects are not followed (a 3xx is a failure).

Each attempt is one ``sendall`` of the request line, headers and body, then the answer's status
line and headers, and its body up to :data:`MAX_ANSWER` bytes (a longer one is not read: that
connection is closed instead). A kept connection idle for a while is checked before reuse (a
receiver may have closed it), and a request on a reused connection that the receiver closed
before answering is made once more on a new one. The standard library's ``http.client`` parses
the answer: per request it costs a fraction of a general-purpose client (bench/FINDINGS.md).
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, urlsplit

from workflow.webhooks_dispatch import Request, Sent
from workflow.webhooks_urls import Target

__all__ = ["MAX_ANSWER", "HttpSender"]

MAX_ANSWER = 64 << 10
"""A receiver's answer body is read up to this many bytes (and otherwise ignored)."""
MAX_ERROR = 500
KEEP_IDLE = 2
"""Idle connections kept per (scheme, host, address, port)."""
CHECK_AFTER = 0.5
"""A connection idle longer than this (seconds) is checked before reuse."""
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


@dataclass(slots=True)
class _Connection:
    sock: socket.socket
    used: float

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def closed_by_peer(self) -> bool:
        """True when the receiver closed it (or sent something unasked) while it was idle."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))


class HttpSender:
    """``send(request) -> Sent``, for :class:`workflow.webhooks_dispatch.Dispatcher`. Thread
    safe; ``timeout`` (seconds) bounds the connection, each write and each read."""

    def __init__(self, timeout: float = 5.0, *, tls: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self._tls = tls
        self._idle: dict[tuple[str, str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Sent:
        target = request.target
        start = time.perf_counter()
        try:
            data = _head(target, len(request.body), request.headers) + request.body
            conn, reused = self._take(target)
            try:
                code, keep = self._exchange(conn, data)
            except _STALE:
                conn.close()
                if not reused:
                    raise
                conn = self._connect(target)  # it closed while we sent: once on a new one
                code, keep = self._exchange(conn, data)
        except TimeoutError:
            return Sent(None, _ms(start), f"timed out after {self.timeout:g} s")
        except (OSError, http.client.HTTPException, UnicodeError) as exc:
            return Sent(None, _ms(start), f"{type(exc).__name__}: {exc}"[:MAX_ERROR])
        latency = _ms(start)
        if keep:
            self._give_back(target, conn)
        else:
            conn.close()
        return Sent(code, latency, None if 200 <= code < 300 else f"answered {code}")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for c in conns:
                c.close()

    # --- connections -----------------------------------------------------------------------
    def _take(self, target: Target) -> tuple[_Connection, bool]:
        key = (target.scheme, target.host, target.address, target.port)
        now = time.monotonic()
        while True:
            with self._lock:
                kept = self._idle.get(key)
                conn = kept.pop() if kept else None
            if conn is None:
                return self._connect(target), False
            if now - conn.used < CHECK_AFTER or not conn.closed_by_peer():
                return conn, True
            conn.close()

    def _give_back(self, target: Target, conn: _Connection) -> None:
        key = (target.scheme, target.host, target.address, target.port)
        conn.used = time.monotonic()
        with self._lock:
            kept = self._idle.setdefault(key, [])
            if len(kept) < KEEP_IDLE:
                kept.append(conn)
                return
        conn.close()

    def _connect(self, target: Target) -> _Connection:
        sock = socket.create_connection((target.address, target.port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.scheme == "https":
                sock = self._context().wrap_socket(sock, server_hostname=target.host)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock, time.monotonic())

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            import certifi  # the CA bundle httpx and requests use

            self._tls = ssl.create_default_context(cafile=certifi.where())
        return self._tls

    @staticmethod
    def _exchange(conn: _Connection, data: bytes) -> tuple[int, bool]:
        """Send ``data``, read the answer: (status, whether the connection may be kept)."""
        conn.sock.sendall(data)
        answer = http.client.HTTPResponse(conn.sock, method="POST")
        try:
            answer.begin()
            body = answer.read(MAX_ANSWER + 1)
            keep = not answer.will_close and len(body) <= MAX_ANSWER and answer.isclosed()
            return answer.status, keep
        finally:
            answer.close()


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


@lru_cache(maxsize=256)
def _request_line(url: str, host: str, scheme: str, port: int) -> bytes:
    parts = urlsplit(url)
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    name = host.encode("idna").decode() if not host.isascii() else host
    name = f"[{name}]" if ":" in name else name
    default = 443 if scheme == "https" else 80
    authority = name if port == default else f"{name}:{port}"
    return f"POST {path} HTTP/1.1\r\nhost: {authority}\r\n".encode()


def _head(target: Target, length: int, headers: Mapping[str, str]) -> bytes:
    lines = [_request_line(target.url, target.host, target.scheme, target.port)]
    lines.extend(f"{k}: {v}\r\n".encode() for k, v in headers.items())
    lines.append(f"content-length: {length}\r\n\r\n".encode())
    return b"".join(lines)
