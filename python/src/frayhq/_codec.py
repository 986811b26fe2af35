"""The value codec every frayhq value goes through.

A value is deterministic CBOR (RFC 8949 core deterministic encoding, which is
what the Go side writes). What CBOR carries natively travels plain: None,
bool, int, float, str, bytes, lists and tuples (as arrays; both decode as
lists) and dicts. Any other Python object travels as CBOR tag PICKLE_TAG
(0x66726179, "fray" in ASCII) wrapping the bytes of ``cloudpickle.dumps``
of it. The tagging is per sub-value, so ``{"x": ndarray}`` is a plain map
whose "x" entry is tagged and a Go reader sees the map.
"""

from __future__ import annotations

import datetime
import decimal
import fractions
import ipaddress
import pickle
import re
import uuid
from dataclasses import dataclass
from typing import Any

import cbor2
import cloudpickle

from .errors import DecodeError, PickleFailed

PICKLE_TAG = 0x66726179  # 1718772089, "fray"

# A Python caller's "no arguments", ((), {}) pickled (the bytes
# cloudpickle.dumps makes too) under the tag, and its CBOR encoding: the
# runtime knows it without unpickling it.
NO_ARGS = cbor2.CBORTag(PICKLE_TAG, pickle.dumps(((), {}), 5))
NO_ARGS_WIRE = cbor2.dumps(NO_ARGS)

REF_VERSION = 1
DIGEST_PREFIX = "sha256:"


def _pickle_tag(encoder: Any, value: Any) -> None:
    try:
        data = cloudpickle.dumps(value)
    except Exception as e:  # noqa: BLE001 - any pickling failure is the caller's bad input
        raise PickleFailed(f"frayhq: cannot pickle {_describe(value)}: {e}") from e
    encoder.encode(cbor2.CBORTag(PICKLE_TAG, data))


def _describe(value: Any) -> str:
    r = repr(value)
    if len(r) > 120:
        r = r[:117] + "..."
    return f"{type(value).__module__}.{type(value).__qualname__} {r}"


def _encode_ref(encoder: Any, value: Ref) -> None:
    encoder.encode(value.to_wire())


# Types cbor2 would encode with its own semantic tags; fray keeps the plain
# set small, so these travel pickled and round-trip exactly in Python.
_PICKLED_TYPES = (
    set,
    frozenset,
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    decimal.Decimal,
    fractions.Fraction,
    uuid.UUID,
    re.Pattern,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    complex,
)


def _encoders() -> dict[type, Any]:
    enc: dict[type, Any] = {t: _pickle_tag for t in _PICKLED_TYPES}
    return enc


_ENCODERS = _encoders()


def _default(encoder: Any, value: Any) -> None:
    if isinstance(value, Ref):
        _encode_ref(encoder, value)
        return
    _pickle_tag(encoder, value)


def dumps(obj: Any) -> bytes:
    """Encode obj as deterministic CBOR, pickling what CBOR cannot carry.

    Raises TypeError (frayhq.errors.FrayError too) naming the object when a
    sub-value cannot be pickled.
    """
    if isinstance(obj, Ref):
        obj = obj.to_wire()
    try:
        return cbor2.dumps(obj, canonical=True, default=_default, encoders=_ENCODERS)
    except PickleFailed:
        raise
    except (cbor2.CBOREncodeError, ValueError, TypeError) as e:
        cause = e.__cause__ or e.__context__
        if isinstance(cause, PickleFailed):
            raise cause from None
        if isinstance(e.__cause__, PickleFailed):
            raise e.__cause__ from None
        raise PickleFailed(f"frayhq: cannot encode {_describe(obj)}: {e}") from e


def _tag_hook(*args: Any) -> Any:
    # cbor2 6 calls tag_hook(tag, immutable); older releases (decoder, tag).
    tag = args[0] if type(args[0]) is cbor2.CBORTag else next(a for a in args if isinstance(a, cbor2.CBORTag))
    if tag.tag == PICKLE_TAG:
        if not isinstance(tag.value, bytes | bytearray):
            raise DecodeError(f"frayhq: CBOR tag {PICKLE_TAG} wraps a {type(tag.value).__name__}, not bytes")
        return cloudpickle.loads(tag.value)
    return tag


def loads(data: bytes, what: str = "value") -> Any:
    """Decode CBOR data, unpickling PICKLE_TAG values.

    A malformed input raises frayhq.DecodeError naming ``what``.
    """
    try:
        return cbor2.loads(data, tag_hook=_tag_hook)
    except DecodeError:
        raise
    except (cbor2.CBORDecodeError, ValueError, EOFError) as e:
        raise DecodeError(f"frayhq: cannot decode {what} ({len(data)} bytes): {e}") from e


def loads_plain(data: bytes, what: str = "record") -> Any:
    """Decode a CBOR record without unpickling anything (tags stay CBORTag)."""
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, EOFError) as e:
        raise DecodeError(f"frayhq: cannot decode {what} ({len(data)} bytes): {e}") from e


def dumps_plain(obj: Any) -> bytes:
    """Encode a wire record (plain CBOR values only) deterministically."""
    return cbor2.dumps(obj, canonical=True)


@dataclass(frozen=True)
class Ref:
    """A reference to an object in the fray object store.

    The same record as Go's objects.Ref: the bucket, the "sha256:<hex>"
    digest of the object's bytes (also its name) and its size. Pass a Ref as
    a task argument and the worker resolves it to the value.
    """

    bucket: str
    digest: str
    size: int
    v: int = REF_VERSION

    def to_wire(self) -> dict[str, Any]:
        return {"v": self.v, "bucket": self.bucket, "digest": self.digest, "size": self.size}

    @classmethod
    def from_wire(cls, m: Any) -> Ref:
        if not isinstance(m, dict):
            raise DecodeError(f"frayhq: object ref: want a map, got {type(m).__name__}")
        try:
            r = cls(bucket=m["bucket"], digest=m["digest"], size=int(m["size"]), v=int(m.get("v", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise DecodeError(f"frayhq: object ref {m!r}: {e}") from e
        r.validate()
        return r

    @staticmethod
    def is_wire(m: Any) -> bool:
        """Whether m looks like a Ref record (a map with exactly its keys)."""
        return isinstance(m, dict) and set(m) == {"v", "bucket", "digest", "size"}

    def validate(self) -> None:
        if self.v != REF_VERSION:
            raise DecodeError(f"frayhq: object ref version {self.v}, this frayhq reads {REF_VERSION}")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", self.bucket or ""):
            raise DecodeError(f"frayhq: object ref bucket {self.bucket!r}")
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", self.digest or ""):
            raise DecodeError(f"frayhq: object ref digest {self.digest!r}: want sha256: and 64 hex digits")
        if self.size < 0:
            raise DecodeError(f"frayhq: object ref size {self.size}")

    def __str__(self) -> str:
        return f"{self.bucket}/{self.digest} ({self.size} bytes)"


_ATOMS = frozenset((type(None), bool, int, float, str, bytes, Ref))
_PLAIN_BUDGET = 1000  # values looked at, at most; more (or a cycle) goes through cloudpickle


def plain_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether args and kwargs hold only builtin scalars, Refs, and tuples,
    lists and dicts of them: what plain pickle writes as cloudpickle does."""
    stack: list[Any] = [args, kwargs]
    for _ in range(_PLAIN_BUDGET):
        if not stack:
            return True
        x = stack.pop()
        t = type(x)
        if t in _ATOMS:
            continue
        if t is tuple or t is list:
            stack.extend(x)
        elif t is dict:
            stack.extend(x.keys())
            stack.extend(x.values())
        else:
            return False
    return False
