"""The trigger answer on the wire: its JSON (built without pydantic models) is byte for byte
``TicketPublic``'s, and the server writes a response's head and body in one write
(``api.wire``) - the same bytes, in the same order, a streamed head never held past the loop
iteration that produced it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.http import ticket_answer
from api.schemas import TicketPublic
from api.wire import HeldWrites
from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, PATHS, reach
from workflow import TicketView, Tierflow


def _model_json(t: TicketView) -> bytes:
    return TicketPublic.of(t).model_dump_json(by_alias=True).encode()


def test_the_answer_is_ticket_publics_json_byte_for_byte(tf: Tierflow, clock: FakeClock) -> None:
    views = []
    for path in PATHS:
        views.append(reach(tf, path, customer_name="Ana Pérez", customer_email="ana@example.com"))
        clock.advance(seconds=37.000123)
    views.append(reach(tf, "new"))  # no customer
    clock.advance(days=9)  # clocks overdue: breached, negative remainders
    views += [tf.get_ticket(account=ACCOUNT, ticket_id=v.id) for v in views]
    tf.scan_sla()  # breaches recorded
    views.append(tf.get_ticket(account=ACCOUNT, ticket_id=views[0].id))
    for v in views:
        assert ticket_answer(v).body == _model_json(v), v.state
    statuses = {c["status"] for v in views for c in v.sla.values()}
    assert {"running", "breached", "met", "none"} <= statuses


class _Transport:
    """What a transport was asked to do, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name == "sockname" else default


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_a_head_goes_out_with_its_body_in_one_write() -> None:
    async def main() -> list[tuple[str, Any]]:
        t = _Transport()
        held = HeldWrites(t, asyncio.get_running_loop())  # type: ignore[arg-type]
        held.write(HEAD)
        assert t.calls == []
        held.write(b"{}")
        held.write(HEAD)  # the next response on the connection
        held.write(b"[]")
        await asyncio.sleep(0)
        return t.calls

    assert asyncio.run(main()) == [("write", HEAD + b"{}"), ("write", HEAD + b"[]")]


def test_a_streamed_head_goes_out_at_the_end_of_the_iteration() -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        t = _Transport()
        held = HeldWrites(t, asyncio.get_running_loop())  # type: ignore[arg-type]
        held.write(HEAD)  # an event stream: its first event comes much later
        await asyncio.sleep(0)
        first = list(t.calls)
        held.write(b"data: 1\n\n")
        return first, t.calls

    first, after = asyncio.run(main())
    assert first == [("write", HEAD)]
    assert after == [("write", HEAD), ("write", b"data: 1\n\n")]


@pytest.mark.parametrize("end", ["close", "abort"])
def test_closing_sends_what_is_held_first_and_aborting_drops_it(end: str) -> None:
    async def main() -> list[tuple[str, Any]]:
        t = _Transport()
        held = HeldWrites(t, asyncio.get_running_loop())  # type: ignore[arg-type]
        held.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        getattr(held, end)()
        await asyncio.sleep(0)  # the end-of-iteration flush finds nothing (or a closed one)
        assert held.get_extra_info("sockname") == ("127.0.0.1", 8000)
        return t.calls

    expected = [("write", b"HTTP/1.1 400 Bad Request\r\n\r\n"), ("close", None)]
    assert asyncio.run(main()) == (expected if end == "close" else [("abort", None)])
