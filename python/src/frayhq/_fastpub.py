"""Publishing on the per-task hot path without nats-py's flusher hop.

nats-py's publish queues the command and wakes its flusher task, which
writes it on a later turn of the event loop: a loop turn, an asyncio
Future and a queue put per publish. A Writer hands the PUB (or HPUB) to
the connection's transport itself: the first publish of a burst at once
(a lone call's latency), the rest of the burst gathered and written
together when the loop next turns (one system call for many tasks).
Messages keep their order with nats-py's own: a publish that finds
nats-py's queue non-empty writes what it gathered and goes through
nc.publish. It reads nats-py 2.16's connection fields (pinned in
pyproject.toml).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

_SUBJECT = re.compile(r"[^\s]+")


class Writer:
    """Publishes on one client's connection, from its event loop only."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self._burst: list[bytes] | None = None  # None: no burst under way, the next write goes at once

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
        if self._burst is None:
            nc._transport.write(cmd)  # noqa: SLF001
            self._burst = []
            asyncio.get_running_loop().call_soon(self.flush)
        else:
            self._burst.append(cmd)
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
