"""A response's head and body in one socket write.

uvicorn writes a response's status line and headers when the app sends
``http.response.start``, and its body, separately, on ``http.response.body``: two ``send``
system calls (made with the interpreter held, under uvloop) and two segments on the wire per
answer. Profiled under load, the two writes were ~22 % of the event loop's time. With
:class:`OneWriteProtocol` (uvicorn's own httptools protocol) the head is held back until the
next write on the connection - the body, for an ordinary response - or until the end of the
event loop's current iteration, whichever comes first, and goes out with it: the same bytes, in
the same order, in one write. A streamed response's head is therefore never held beyond the
iteration that produced it (an event stream still answers at once), and closing or aborting the
connection sends (or, for an abort, drops) what is held first, as the transport itself would.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeldWrites", "OneWriteProtocol"]

_HEAD = b"HTTP/"


class HeldWrites:
    """``transport`` with a response head held back until the next write (or the end of the
    loop iteration): every other call goes to the transport itself."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + bytes(data))
        elif data[:5] == _HEAD:  # a head (uvicorn writes it whole, in one call)
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write what is held, if anything (the end of the iteration, or before a close)."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name: str) -> Any:  # is_closing, pause_reading, get_extra_info, ...
        return getattr(self._transport, name)


class OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing each ordinary response in one write."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        held: Any = HeldWrites(transport, self.loop)
        super().connection_made(held)
