"""The fray object store from Python: content-addressed objects in the
JetStream object store bucket FRAY_OBJECTS, laid out exactly as the Go
package objects writes them (see PROTOCOL.md, "Objects protocol").
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from ._codec import DIGEST_PREFIX, Ref
from .errors import DecodeError, FrayError, NotFound

BUCKET = "FRAY_OBJECTS"
STREAM = "OBJ_" + BUCKET
INLINE_THRESHOLD = 256 << 10
CHUNK_SIZE = 256 << 10
MAX_VALUE_SIZE = 1 << 30
WINDOW = 8  # chunks in flight
ACK_TIMEOUT = 30.0  # seconds a chunk's PubAck may take
BATCH = 32  # chunks per batched direct get
# nats.go reads mtime as a time.Time: the zero time is what Go writes.
ZERO_MTIME = "0001-01-01T00:00:00Z"


class CorruptObject(FrayError):
    """Stored bytes or metadata that do not match the Ref."""


class TooLarge(FrayError, ValueError):
    """A value over the maximum value size (1 GiB)."""


def _meta_subject(name: str) -> str:
    return f"$O.{BUCKET}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"


def _chunk_subject(nuid: str) -> str:
    return f"$O.{BUCKET}.C.{nuid}"


def _nats_digest(sum_: bytes) -> str:
    return "SHA-256=" + base64.urlsafe_b64encode(sum_).decode()


def meta_json(name: str, nuid: str, size: int, chunks: int, ndigest: str) -> bytes:
    """An object's metadata: the NATS object store's JSON ObjectInfo."""
    info = {
        "name": name,
        "bucket": BUCKET,
        "nuid": nuid,
        "size": size,
        "mtime": ZERO_MTIME,
        "chunks": chunks,
        "digest": ndigest,
        "options": {"max_chunk_size": CHUNK_SIZE},
    }
    return json.dumps(info, separators=(",", ":")).encode()


# What a put publishes: the object's chunks and metadata, and the reads of
# its metadata (whether it is stored already).
_PUT_SUBJECTS = (
    f"$O.{BUCKET}.>",
    f"$JS.API.DIRECT.GET.{STREAM}",
    f"$JS.API.DIRECT.GET.{STREAM}.>",
    f"$JS.API.STREAM.MSG.GET.{STREAM}",
)


class ObjectStore:
    def __init__(self, nc: NATS, js: JetStreamContext, perms: Any = None) -> None:
        self.nc = nc
        self.js = js
        self.perms = perms  # a Perms: a refused chunk or metadata publish fails the put at once
        self._ack_prefix = ""  # PubAcks of chunks come to <inbox>.<token>
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._ack_seq = 0

    async def _publish_chunk(self, subj: str, data: bytes) -> tuple[str, asyncio.Future[None]]:
        """Publish one chunk; the future settles with its PubAck: an error
        PubAck (a stream limit, say) fails it. nats-py's publish_async never
        settles on an error PubAck, which would hang the put."""
        if not self._ack_prefix:
            prefix = self.nc.new_inbox() + "."
            await self.nc.subscribe(prefix + "*", cb=self._on_ack)
            self._ack_prefix = prefix
        self._ack_seq += 1
        token = str(self._ack_seq)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[token] = fut
        try:
            await self.nc.publish(subj, data, reply=self._ack_prefix + token)
        except BaseException:
            self._acks.pop(token, None)
            raise
        return token, fut

    async def _on_ack(self, msg: Any) -> None:
        fut = self._acks.pop(msg.subject[len(self._ack_prefix) :], None)
        if fut is None or fut.done():
            return
        data = msg.data
        if not data:  # a no-responders status: no stream took it
            fut.set_exception(FrayError(f"frayhq: no JetStream stream took a chunk on {msg.subject}"))
            return
        try:
            ack = json.loads(data)
        except ValueError:
            ack = {"error": {"description": f"unreadable PubAck {data[:200]!r}"}}
        err = ack.get("error") if isinstance(ack, dict) else None
        if err:
            desc = err.get("description", err) if isinstance(err, dict) else err
            fut.set_exception(FrayError(f"frayhq: the object store refused a chunk: {desc}"))
        else:
            fut.set_result(None)

    async def _chunk_acked(self, sent: tuple[str, asyncio.Future[None]]) -> None:
        token, fut = sent
        try:
            await asyncio.wait_for(fut, ACK_TIMEOUT)
        except TimeoutError:
            raise FrayError(
                f"frayhq: no PubAck for an object chunk within {ACK_TIMEOUT} s; is the broker up?"
            ) from None
        finally:
            self._acks.pop(token, None)

    async def _meta(self, name: str, leader: bool = False) -> tuple[dict[str, Any] | None, int]:
        """The object's metadata and its stream sequence (None, 0 when absent)."""
        subj = _meta_subject(name)
        try:
            msg = await self.js.get_last_msg(STREAM, subj, direct=not leader)
        except nats.js.errors.NotFoundError:
            return None, 0
        try:
            return json.loads(msg.data or b"{}"), int(msg.seq or 0)
        except ValueError as e:
            raise DecodeError(f"frayhq: object metadata on {subj}: {e}") from e

    async def _chunks_present(self, nuid: str) -> int:
        subj = _chunk_subject(nuid)
        info = await self.js._jsm.stream_info(STREAM, subjects_filter=subj)  # noqa: SLF001
        return int((info.state.subjects or {}).get(subj, 0))

    @staticmethod
    def _live(meta: dict[str, Any] | None, digest: str, size: int) -> bool:
        return bool(
            meta
            and not meta.get("deleted")
            and meta.get("digest") == digest
            and int(meta.get("size") or 0) == size
        )

    async def put_bytes(self, data: bytes) -> Ref:
        if self.perms is None:
            return await self._put_bytes(data)
        async with self.perms.guard(*_PUT_SUBJECTS):
            return await self._put_bytes(data)

    async def _put_bytes(self, data: bytes) -> Ref:
        if len(data) > MAX_VALUE_SIZE:
            raise TooLarge(f"frayhq: value of {len(data)} bytes is over the {MAX_VALUE_SIZE}-byte limit")
        sum_ = hashlib.sha256(data).digest()
        name = DIGEST_PREFIX + sum_.hex()
        ndigest = _nats_digest(sum_)
        ref = Ref(bucket=BUCKET, digest=name, size=len(data))
        meta, _ = await self._meta(name)
        if self._live(meta, ndigest, len(data)):
            chunks = int(meta.get("chunks") or 0)  # type: ignore[union-attr]
            if chunks == 0 or await self._chunks_present(meta["nuid"]) >= chunks:  # type: ignore[index]
                return ref
        nuid = self.nc._nuid.next().decode()  # noqa: SLF001
        subj = _chunk_subject(nuid)
        inflight: list[tuple[str, asyncio.Future[None]]] = []
        nchunks = 0
        try:
            view = memoryview(data)
            for off in range(0, len(data), CHUNK_SIZE):
                if len(inflight) >= WINDOW:
                    await self._chunk_acked(inflight.pop(0))
                inflight.append(await self._publish_chunk(subj, bytes(view[off : off + CHUNK_SIZE])))
                nchunks += 1
            while inflight:
                await self._chunk_acked(inflight.pop(0))
            body = meta_json(name, nuid, len(data), nchunks, ndigest)
            for _ in range(5):
                _, seq = await self._meta(name, leader=True)
                hdr = {"Nats-Rollup": "sub", "Nats-Expected-Last-Subject-Sequence": str(seq)}
                try:
                    await self.js.publish(_meta_subject(name), body, headers=hdr)
                    return ref
                except nats.js.errors.APIError as e:
                    if "wrong last sequence" not in str(e).lower() and getattr(e, "err_code", 0) != 10071:
                        raise
                    meta, _ = await self._meta(name, leader=True)
                    if self._live(meta, ndigest, len(data)):
                        await self._purge(subj)
                        return ref
            raise FrayError(f"frayhq: put of {ref}: the metadata kept changing under it")
        except BaseException:
            for token, f in inflight:
                self._acks.pop(token, None)
                f.cancel()
            try:
                await asyncio.shield(self._purge(subj))
            except Exception:  # noqa: BLE001 - best effort: the put already failed
                pass
            raise

    async def _purge(self, subj: str) -> None:
        await self.js._jsm.purge_stream(STREAM, subject=subj)  # noqa: SLF001

    async def get_bytes(self, ref: Ref) -> bytes:
        if ref.bucket != BUCKET:
            raise NotFound(f"frayhq: object {ref}: this cluster's object store is {BUCKET}")
        meta, _ = await self._meta(ref.digest)
        if not meta or meta.get("deleted"):
            raise NotFound(f"frayhq: object {ref} not found (deleted or expired)")
        sum_ = bytes.fromhex(ref.digest.removeprefix(DIGEST_PREFIX))
        if meta.get("digest") != _nats_digest(sum_) or int(meta.get("size") or 0) != ref.size:
            raise CorruptObject(
                f"frayhq: object {ref}: metadata says {meta.get('digest')} of {meta.get('size')} bytes"
            )
        chunks = int(meta.get("chunks") or 0)
        subj = _chunk_subject(meta["nuid"])
        parts: list[bytes] = []
        if chunks <= 4:
            seq = 0
            for _ in range(chunks):
                try:
                    m = await self.js._jsm.get_msg(STREAM, seq=seq + 1, subject=subj, direct=True, next=True)  # noqa: SLF001
                except nats.js.errors.NotFoundError:
                    raise NotFound(f"frayhq: object {ref} not found (its chunks expired)") from None
                parts.append(m.data or b"")
                seq = int(m.seq or 0)
        else:
            if await self._chunks_present(meta["nuid"]) < chunks:
                raise NotFound(f"frayhq: object {ref} not found (its chunks expired)")
            parts = await self._read_batched(ref, subj, chunks)
        data = b"".join(parts)
        if len(data) != ref.size or hashlib.sha256(data).digest() != sum_:
            raise CorruptObject(f"frayhq: object {ref}: the stored bytes do not match its digest")
        return data

    async def _read_batched(self, ref: Ref, subj: str, chunks: int) -> list[bytes]:
        """The chunks in order, by batched direct gets (nats-server 2.11+):
        up to BATCH messages per request, ended by an EOB status; the next
        request starts after the last sequence read."""
        q: asyncio.Queue[Any] = asyncio.Queue()
        inbox = self.nc.new_inbox()

        async def on_msg(m: Any) -> None:
            q.put_nowait(m)

        sub = await self.nc.subscribe(inbox, cb=on_msg)
        parts: list[bytes] = []
        seq = 0
        try:
            while len(parts) < chunks:
                want = min(BATCH, chunks - len(parts))
                req = {"seq": seq + 1, "next_by_subj": subj, "batch": want}
                await self.nc.publish(f"$JS.API.DIRECT.GET.{STREAM}", json.dumps(req).encode(), reply=inbox)
                while True:
                    try:
                        m = await asyncio.wait_for(q.get(), 5)
                    except TimeoutError:
                        raise NotFound(
                            f"frayhq: object {ref}: no chunk for 5 s (expired mid-read?)"
                        ) from None
                    status = (m.headers or {}).get("Status")
                    if status == "204":
                        break  # end of this batch
                    if status == "404":
                        raise NotFound(f"frayhq: object {ref} not found (its chunks expired)")
                    if status:
                        raise FrayError(f"frayhq: object {ref}: direct get refused: {status} {m.headers}")
                    parts.append(m.data)
                    seq = int(m.headers["Nats-Sequence"])
                    if len(parts) == chunks:
                        break
        finally:
            await sub.unsubscribe()
        return parts

    async def delete(self, ref: Ref) -> None:
        name = ref.digest
        for _ in range(5):
            meta, seq = await self._meta(name, leader=True)
            if not meta or meta.get("deleted"):
                raise NotFound(f"frayhq: object {ref} not found")
            marker = {
                "name": name,
                "bucket": BUCKET,
                "nuid": meta["nuid"],
                "mtime": ZERO_MTIME,
                "deleted": True,
            }
            hdr = {"Nats-Rollup": "sub", "Nats-Expected-Last-Subject-Sequence": str(seq)}
            try:
                await self.js.publish(_meta_subject(name), json.dumps(marker).encode(), headers=hdr)
            except nats.js.errors.APIError as e:
                if "wrong last sequence" in str(e).lower():
                    continue
                raise
            await self._purge(_chunk_subject(meta["nuid"]))
            return
        raise FrayError(f"frayhq: delete of {ref}: the metadata kept changing under it")
