"""The per-task hot path on nats-py without its flusher and queue hops.

nats-py's publish queues the command and wakes its flusher task, which
writes it on a later turn of the event loop: a loop turn, an asyncio
Future and a queue put per publish. A Writer hands the PUB (or HPUB) to
the connection's transport itself: the first publish of a burst at once
(a lone call's latency), the rest of the burst gathered and written
together when the loop next turns (one system call for many tasks).
Messages keep their order with nats-py's own: a publish that finds
nats-py's queue non-empty writes what it gathered and goes through
nc.publish. subscribe_direct hands each message to a plain function as
it is parsed, without a queue, a task, header parsing or a Msg. Both read nats-py 2.16's connection and subscription fields
(pinned in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

_SUBJECT = re.compile(r"[^\s]+")
log = logging.getLogger("frayhq")
BURST_BYTES = 64 << 10  # a burst gathers at most this much before it is written


class Writer:
    """Publishes on one client's connection, from its event loop only."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self._burst: list[bytes] | None = None  # None: no burst under way, the next write goes at once
        self._size = 0  # bytes in _burst

    def publish(self, subject: str, payload: bytes, reply: str = "", hdr: bytes | None = None) -> bool:
        """Send the message, in order after everything published before;
        False (nothing sent) when it must go through nc.publish: nats-py has
        commands queued, is not connected, or should judge the subject or
        size itself."""
        nc = self.nc
        if (
            nc._pending_data_size  # noqa: SLF001
            or not nc.is_connected
            or nc._transport is None  # noqa: SLF001
            or len(payload) > nc._max_payload  # noqa: SLF001
            or not _SUBJECT.fullmatch(subject)
            or (reply and not _SUBJECT.fullmatch(reply))
        ):
            self.flush()
            return False
        if hdr is None:
            cmd = f"PUB {subject} {reply} {len(payload)}\r\n".encode() + payload + b"\r\n"
        else:
            head = f"HPUB {subject} {reply} {len(hdr)} {len(hdr) + len(payload)}\r\n".encode()
            cmd = head + hdr + payload + b"\r\n"
        stats = nc.stats
        stats["out_msgs"] += 1
        stats["out_bytes"] += len(payload)
        burst = self._burst
        if burst is None:
            nc._transport.write(cmd)  # noqa: SLF001
            self._burst, self._size = [], 0
            asyncio.get_running_loop().call_soon(self.flush)
            return True
        burst.append(cmd)
        self._size += len(cmd)
        if self._size >= BURST_BYTES:  # a long burst goes out as it grows
            nc._transport.write(b"".join(burst))  # noqa: SLF001
            burst.clear()
            self._size = 0
        return True

    def flush(self) -> None:
        """Write what the burst gathered; the burst ends."""
        burst, self._burst = self._burst, None
        if not burst:
            return
        nc = self.nc
        if nc.is_connected and nc._transport is not None and not nc._pending_data_size:  # noqa: SLF001
            nc._transport.write(b"".join(burst))  # noqa: SLF001
            return
        # Connection lost meanwhile (or nats-py queued something, which is
        # later than these): nats-py's queue sends them after a reconnect.
        nc._pending[:0] = burst  # noqa: SLF001
        nc._pending_data_size += sum(len(c) for c in burst)  # noqa: SLF001


class _Direct:
    """Stands in for a nats-py subscription's pending queue: each message
    goes to fn at once, in the read loop's turn, instead of through an
    asyncio.Queue and the subscription's own task (a loop turn and a
    coroutine per message)."""

    def __init__(self, sub: Any, fn: Any) -> None:
        self.sub = sub
        self.fn = fn

    def put_nowait(self, msg: Any) -> None:
        self.sub._pending_size -= len(msg.data)  # noqa: SLF001 - nats-py counted it as queued
        try:
            self.fn(msg)
        except Exception:  # noqa: BLE001 - the read loop must go on
            log.exception("frayhq: handling a message on %s", msg.subject)

    def qsize(self) -> int:
        return 0

    def empty(self) -> bool:
        return True

    def task_done(self) -> None:
        pass

    async def join(self) -> None:
        pass


class RawMsg:
    """A message as a direct subscription's function gets it: subject and
    data (headers only on a status message, which comes as nats-py's Msg)."""

    __slots__ = ("subject", "data", "headers")

    def __init__(self, subject: str, data: bytes) -> None:
        self.subject = subject
        self.data = data
        self.headers = None


def _direct_table(nc: Any) -> dict[int, Any]:
    """The connection's direct subscriptions by sid; the first call puts a
    shortcut in front of nats-py's message processing: a message with data
    for one of them goes to its function without parsing its headers or
    building a Msg (the results' republished headers are never read)."""
    table: dict[int, Any] | None = getattr(nc, "_frayhq_direct", None)
    if table is not None:
        return table
    table = {}
    slow = nc._process_msg  # noqa: SLF001

    async def process(sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        fn = table.get(sid)
        if fn is None or not data:  # not ours, or a status (no responders): nats-py's way
            await slow(sid, subject, reply, data, headers)
            return
        stats = nc.stats
        stats["in_msgs"] += 1
        stats["in_bytes"] += len(data)
        try:
            fn(RawMsg(subject.decode(), data))
        except Exception:  # noqa: BLE001 - the read loop must go on
            log.exception("frayhq: handling a message on %s", subject)

    nc._process_msg = process  # noqa: SLF001
    nc._frayhq_direct = table
    return table


async def subscribe_direct(nc: Any, subject: str, fn: Any) -> Any:
    """Subscribe with fn (synchronous, on the loop; it must not block)
    called for every message as the read loop parses it."""
    table = _direct_table(nc)
    sub = await nc.subscribe(subject)  # no callback: no task of its own
    queued, sub._pending_queue = sub._pending_queue, _Direct(sub, fn)  # noqa: SLF001
    table[sub._id] = fn  # noqa: SLF001
    while not queued.empty():  # none in practice: nothing ran since the SUB
        sub._pending_queue.put_nowait(queued.get_nowait())  # noqa: SLF001
    return sub


async def unsubscribe_direct(nc: Any, sub: Any) -> None:
    """Unsubscribe a subscription made by subscribe_direct."""
    _direct_table(nc).pop(sub._id, None)  # noqa: SLF001
    await sub.unsubscribe()
