"""The lane: a synchronous actor call's own blocking NATS connection.

Why it exists: a synchronous ``h.method(...)`` made on the client's nats-py
connection crosses threads twice, the caller's thread to the event loop to
publish and the loop back to the caller when the reply is parsed. That is
about 0.14 ms of a 0.5 ms call. On the lane the calling thread writes the
PUB to the socket itself and reads the socket until its reply comes.

The lane is small on purpose. It speaks only what it needs: CONNECT, built
by nats-py's own code from the client's connection (so its credentials,
nkeys, JWT and TLS settings are reused, not reimplemented), SUB to its
inbox and PUB out; MSG, HMSG, PING, PONG, +OK, -ERR and INFO in. One
thread uses it at a time (``lock``). It has no thread of its own: the
client's sweep answers the server's PINGs while nobody calls (``tend``).
Everything else the client does stays on nats-py.

NATS keeps order per connection only, so ``_actors`` sends a call on the
lane only when the client has no earlier call to that actor outstanding on
nats-py; and whatever a waiting call needs beyond its reply (deadline,
sweep) is the async machinery's, which ``_actors`` hands a slow call to.
A call whose lane breaks, or goes silent (no PONG to our PING), moves to
nats-py whole: its reply subject is subscribed there and a barrier on that
connection finds out whether it still runs (PROTOCOL.md, "Python client").
"""

from __future__ import annotations

import json
import logging
import re
import select
import socket
import ssl
import threading
import time
from typing import Any

log = logging.getLogger("frayhq")

CONNECT_TIMEOUT = 2.0
SEND_TIMEOUT = 10.0
_SUBJECT = re.compile(r"[^\s]+")
_DENIED = re.compile(rb'permissions violation for publish to "([^"]*)"', re.IGNORECASE)

# What wait() saw.
REPLY = "reply"  # the call's reply (data)
NO_RESPONDERS = "no-responders"  # not delivered: nobody serves the subject
DENIED = "denied"  # not delivered: the user may not publish there
TIMEOUT = "timeout"
BROKEN = "broken"  # the server's end closed (or reset) the connection; the socket is closed
# The lane dropped the connection itself (a PING or PONG it could not
# write): what it had written may still reach the server.
DROPPED = "dropped"


class Refused(Exception):
    """The lane cannot be opened for good (auth, TLS mode, a refused SUB)."""


class Down(Exception):
    """The lane cannot be opened now (the server is not reachable)."""


class _ConnectShim:
    """What nats-py's Client._connect_command reads, with the lane's INFO
    (its nonce) in place of the client connection's."""

    def __init__(self, nc: Any, info: dict[str, Any]) -> None:
        self.options = nc.options
        self._server_info = info
        self._auth_configured = bool(nc._auth_configured or info.get("auth_required"))  # noqa: SLF001
        self._signature_cb = nc._signature_cb  # noqa: SLF001
        self._user_jwt_cb = nc._user_jwt_cb  # noqa: SLF001
        self._public_nkey = nc._public_nkey  # noqa: SLF001
        self._current_server = nc._current_server  # noqa: SLF001


class Lane:
    """One blocking connection, used by the thread holding ``lock``."""

    def __init__(self, nc: Any, inbox: str) -> None:
        self.nc = nc
        self.inbox = inbox  # its replies come to <inbox>.<token>
        self.lock = threading.Lock()
        self.off = False  # cannot be opened: every call takes the async path
        self.closed = False  # the client shut down
        self.sent = 0  # calls published on the lane (tests read these)
        self.answered = 0  # replies read on the lane
        self.pongs = 0  # the server's PINGs answered
        self.broke = 0  # connections lost with a call waiting
        self.opened = 0  # connections opened
        self.pings = 0  # our PINGs sent on this connection
        self.pongs_in = 0  # and answered
        self._pinged = 0.0  # when the last was sent
        self._peer_closed = False  # the connection ended from the server's side (seen by a read)
        self._gen = -1  # the client connection's reconnects when the lane was opened
        self._sock: Any = None
        self._poll: Any = None
        self._buf = bytearray()
        self._ntok = 0
        self._max_payload = 1 << 20
        self._retry_at = 0.0  # a failed open is tried again from then on

    # ---- connection

    def ready(self) -> bool:
        """Open (or reopen) the connection when needed; False when it
        cannot be now. Called by the lock holder."""
        if self.closed or self.off:
            return False
        if self._sock is not None and self.nc.stats.get("reconnects", 0) != self._gen:
            # The client's connection moved (maybe to another server of the
            # cluster): the lane follows it.
            self._drop()
        if self._sock is not None:
            self._drain()  # a PING answered, or the server's close seen before anything is sent
            if self._sock is not None:
                return True
        if time.monotonic() < self._retry_at:
            return False
        try:
            self._open()
            return True
        except Refused as e:
            self.off = True
            log.debug("frayhq: synchronous actor calls stay on the client's connection: %s", e)
        except (Down, OSError) as e:
            self._retry_at = time.monotonic() + 1.0
            log.debug("frayhq: the lane connection is down: %s", e)
        except Exception as e:  # noqa: BLE001 - a malformed INFO, an auth callback's error
            self.off = True
            log.debug("frayhq: synchronous actor calls stay on the client's connection: %r", e)
        return False

    def _open(self) -> None:
        nc = self.nc
        gen = nc.stats.get("reconnects", 0)  # before the server: a reconnect between reopens it again
        srv = nc._current_server  # noqa: SLF001
        if srv is None or not nc.is_connected:
            raise Down("the client's connection is not up")
        uri = srv.uri
        if uri.scheme in ("ws", "wss"):
            raise Refused("a websocket connection")
        hostname = nc.options.get("tls_hostname") or srv.tls_name or uri.hostname
        sock: Any = socket.create_connection((uri.hostname, uri.port or 4222), timeout=CONNECT_TIMEOUT)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if nc.options.get("tls_handshake_first"):
                sock = self._tls(sock, hostname)
            self._sock, self._buf = sock, bytearray()
            line = self._line()
            if not line.startswith(b"INFO "):
                raise Refused(f"the server's first line is not INFO: {line[:80]!r}")
            info = json.loads(line[5:])
            if info.get("tls_required") and not isinstance(sock, ssl.SSLSocket):
                sock = self._sock = self._tls(sock, hostname)
            if not info.get("headers"):
                raise Refused("the server does not do headers (no-responders statuses)")
            self._max_payload = int(info.get("max_payload") or self._max_payload)
            cmd = type(nc)._connect_command(_ConnectShim(nc, info))  # noqa: SLF001
            opts = json.loads(cmd.split(b" ", 1)[1])
            opts.update(verbose=False, pedantic=False, headers=True, no_responders=True, name="frayhq-lane")
            connect = b"CONNECT " + json.dumps(opts).encode() + b"\r\n"
            sock.sendall(connect + b"PING\r\n")
            self._until_pong("connect")
            sock.sendall(f"SUB {self.inbox}.* 1\r\nPING\r\n".encode())
            self._until_pong("subscribe")
        except BaseException:
            self._sock = None
            sock.close()
            raise
        sock.settimeout(0.0)  # from now on: poll, then read what is there
        self._gen, self.pings, self.pongs_in, self._pinged = gen, 0, 0, 0.0
        self._peer_closed = False
        self.opened += 1
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        if self.closed:  # the client shut down meanwhile (close() found no socket)
            self._drop()
            raise Down("the client is shut down")

    def _tls(self, sock: socket.socket, hostname: str | None) -> ssl.SSLSocket:
        try:
            ctx = self.nc.ssl_context
        except Exception as e:  # noqa: BLE001 - nats-py's own complaint
            raise Refused(f"TLS: {e}") from None
        return ctx.wrap_socket(sock, server_hostname=hostname)

    def _line(self) -> bytes:
        """One line during the handshake (blocking, CONNECT_TIMEOUT)."""
        while (i := self._buf.find(b"\r\n")) < 0:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                raise Down("the server did not answer the handshake") from None
            if not data:
                raise Down("the server closed the connection during the handshake")
            self._buf += data
        line = bytes(self._buf[:i])
        del self._buf[: i + 2]
        return line

    def _until_pong(self, what: str) -> None:
        while True:
            line = self._line()
            if line == b"PONG":
                return
            if line == b"PING":
                self._sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise Refused(f"{what}: {line[5:].decode(errors='replace').strip(chr(39))}")
            # +OK, INFO: nothing to do

    def close(self) -> None:
        """The client's shutdown: wakes a thread waiting on the socket (it
        sees BROKEN and the lane closed); the lock holder closes it."""
        self.closed = True
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.lock.acquire(timeout=5):
            try:
                self._drop()
            finally:
                self.lock.release()

    def drop(self) -> None:
        """Close the connection (the lock holder): it went silent."""
        self._drop()

    def _drop(self) -> None:
        sock, self._sock, self._poll = self._sock, None, None
        self._buf = bytearray()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # ---- calls

    def send(self, subject: str, body: bytes) -> str | None:
        """Publish a call with a new reply token; the token, or None when
        nothing was sent (the lane is not up, or nats-py must judge the
        subject or size). Called by the lock holder after ready()."""
        if len(body) > self._max_payload or not _SUBJECT.fullmatch(subject):
            return None
        self._ntok += 1
        tok = format(self._ntok, "x")
        head = f"PUB {subject} {self.inbox}.{tok} {len(body)}\r\n".encode()
        try:
            self._send_all(head + body + b"\r\n")
            self.sent += 1
        except OSError:
            # Not all of it went out: the server never had a whole message
            # to act on. Nothing sent; the call goes the ordinary way.
            self._drop()
            return None
        except BaseException:
            # Interrupted (KeyboardInterrupt) maybe halfway through the PUB:
            # nothing may follow half a message on this connection.
            self._drop()
            raise
        return tok

    def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = None
        while view:
            try:
                view = view[self._sock.send(view) :]
                continue
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            deadline = deadline or time.monotonic() + SEND_TIMEOUT
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("frayhq: the lane's socket took nothing for 10 s")
            select.select([self._sock], [self._sock], [], left)

    def wait(self, tok: str, subject: str, timeout: float) -> tuple[str, bytes]:
        """Read until the reply for tok (a call published to subject), a
        refusal of its publish, the connection's end, or timeout; answers
        PINGs, drops stale replies."""
        deadline = time.monotonic() + timeout
        want = (f"{self.inbox}.{tok}".encode(), subject.encode())
        try:
            while self._sock is not None:
                got = self._parse(want)
                if got is not None:
                    return got
                if self._sock is None:
                    break
                if not (isinstance(self._sock, ssl.SSLSocket) and self._sock.pending()):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        if self._recv():
                            continue  # a last look: what came is read before timing out
                        if self._sock is None:
                            break
                        return TIMEOUT, b""
                    if not self._poll.poll(left * 1000):
                        continue
                # Nothing read while the socket lives is no end: a wake-up
                # without data, or part of a TLS record. _recv closes it at the end.
                self._recv()
        except BaseException:
            # Interrupted (KeyboardInterrupt) maybe between a read and its
            # parse: what follows on this connection cannot be trusted.
            self._drop()
            raise
        self.broke += 1
        return (BROKEN if self._peer_closed else DROPPED), b""

    def ping(self) -> None:
        """Send a PING of ours (the lock holder); silent() tells whether it
        was answered in time."""
        self.pings += 1
        try:
            self._send_all(b"PING\r\n")
        except OSError:
            self._drop()
        self._pinged = time.monotonic()  # its wait starts once it is written (behind our PUB)

    def ping_due(self, every: float) -> bool:
        """Our last PING is answered and older than every seconds."""
        return self.pongs_in >= self.pings and time.monotonic() - self._pinged >= every

    def silent(self, wait: float) -> bool:
        """Our last PING has waited over wait seconds for its PONG."""
        return self.pongs_in < self.pings and time.monotonic() - self._pinged > wait

    def tend(self) -> None:
        """From the client's sweep (on its event loop), while no call uses
        the lane: answer the server's PINGs, so an idle lane is not closed
        as stale. Never waits: a PONG the socket cannot take at once drops
        the connection."""
        if self._sock is None or not self.lock.acquire(blocking=False):
            return
        try:
            self._drain(block=False)
        finally:
            self.lock.release()

    def _drain(self, block: bool = True) -> None:
        """Read and handle what is there without waiting."""
        while self._sock is not None and self._recv():
            self._parse(None, block)

    def _recv(self) -> bool:
        """Append what the socket has to the buffer; False when nothing was
        there, or the connection ended (the socket is closed then)."""
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError:
            data = b""
        if not data:
            self._drop()
            self._peer_closed = True
            return False
        self._buf += data
        return True

    def _parse(self, want: tuple[bytes, bytes] | None, block: bool = True) -> tuple[str, bytes] | None:
        """Handle the complete frames in the buffer, up to the one for want
        (reply subject, the call's subject). block: a PONG may wait for
        room in the socket (else the connection is dropped)."""
        buf = self._buf
        while (i := buf.find(b"\r\n")) >= 0:
            op = buf[:4]
            if op == b"MSG " or op == b"HMSG":
                parts = bytes(buf[:i]).split()
                total = int(parts[-1])
                hlen = int(parts[-2]) if op == b"HMSG" else 0
                end = i + 2 + total + 2
                if len(buf) < end:
                    return None
                subj = parts[1]
                hdr = bytes(buf[i + 2 : i + 2 + hlen])
                data = bytes(buf[i + 2 + hlen : i + 2 + total])
                del buf[:end]
                if want is None or subj != want[0]:
                    continue  # a reply for a call given up on
                if not data and hdr[9:12] == b"503":  # "NATS/1.0 503"
                    return NO_RESPONDERS, b""
                self.answered += 1
                return REPLY, data
            line = bytes(buf[:i])
            del buf[: i + 2]
            if line == b"PING":
                self.pongs += 1
                if not self._pong(block):
                    return None
            elif line == b"PONG":
                self.pongs_in += 1
            elif line.startswith(b"-ERR") and want is not None:
                m = _DENIED.search(line)
                if m and m.group(1) == want[1]:
                    # A publish to the waited-for call's subject refused: the
                    # call is not delivered. (A refusal for another subject
                    # is an abandoned call's; the server closes the
                    # connection after any error but a permission one.)
                    return DENIED, b""
            # +OK, INFO: nothing to do
        return None

    def _pong(self, block: bool) -> bool:
        try:
            if block:
                self._send_all(b"PONG\r\n")
            elif self._sock.send(b"PONG\r\n") != 6:
                raise BlockingIOError
        except (OSError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            self._drop()
            return False
        return True
