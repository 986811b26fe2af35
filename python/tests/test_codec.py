import threading

import cbor2
import cloudpickle
import pytest

import frayhq
from frayhq import _codec


def test_plain_values_travel_as_plain_cbor():
    v = {"s": "x", "i": -3, "f": 1.5, "b": b"\x00", "l": [1, None, True], "n": None}
    data = _codec.dumps(v)
    assert cbor2.loads(data) == v  # no tag anywhere: any CBOR reader sees the map
    assert _codec.loads(data) == v


def test_tuples_decode_as_lists():
    assert _codec.loads(_codec.dumps((1, (2, 3)))) == [1, [2, 3]]


def test_other_objects_are_tagged_per_sub_value():
    data = _codec.dumps({"x": {1, 2}, "y": 3})
    raw = cbor2.loads(data)
    assert raw["y"] == 3
    assert isinstance(raw["x"], cbor2.CBORTag) and raw["x"].tag == frayhq.PICKLE_TAG == 0x66726179
    assert cloudpickle.loads(raw["x"].value) == {1, 2}
    assert _codec.loads(data) == {"x": {1, 2}, "y": 3}


def test_encoding_is_deterministic_with_go_key_order():
    # RFC 8949 core deterministic: shorter keys first, then bytewise.
    assert _codec.dumps({"bb": 1, "a": 2, "c": 3}) == bytes.fromhex("a3616102616303626262" + "01")


def test_unpicklable_value_names_the_object():
    with pytest.raises(TypeError, match="_thread.lock") as ei:
        _codec.dumps({"k": threading.Lock()})
    assert isinstance(ei.value, frayhq.FrayError)


def test_garbage_names_what_was_decoded():
    with pytest.raises(frayhq.DecodeError, match="result value"):
        _codec.loads(b"\xff\xff", "result value")


def test_ref_round_trips_as_the_go_record():
    r = frayhq.Ref(bucket="FRAY_OBJECTS", digest="sha256:" + "ab" * 32, size=7)
    m = cbor2.loads(_codec.dumps(r))
    assert m == {"v": 1, "bucket": "FRAY_OBJECTS", "digest": "sha256:" + "ab" * 32, "size": 7}
    assert frayhq.Ref.from_wire(m) == r
    with pytest.raises(frayhq.DecodeError, match="digest"):
        frayhq.Ref.from_wire({"v": 1, "bucket": "B", "digest": "md5:x", "size": 1})


def test_task_record_encodes_canonically() -> None:
    # The fast path orders the Task record's keys itself instead of letting
    # cbor2 sort them: the bytes must be what canonical encoding gives.
    from frayhq._tasks import encode_task

    base = {"v": 2, "fn": "py.call", "submitted_ms": 1 << 41}
    for extra in (
        {},
        {"arg": b"\x01\x02"},
        {"retries": 3, "timeout_ms": 1500},
        {"arg": b"", "retries": 1},
        {"max_deliveries": 2},
    ):
        rec = {**base, **extra}
        assert encode_task(rec) == cbor2.dumps(rec, canonical=True), extra
    odd = {**base, "a_new_field": 7}
    assert encode_task(odd) == cbor2.dumps(odd, canonical=True)


def test_import_frayhq_leaves_the_client_dependencies_unloaded() -> None:
    # A runtime process and a Python actor import frayhq without
    # connecting: nats-py and aiohttp (most of a second) load on first use.
    import subprocess
    import sys

    code = (
        "import sys, frayhq, frayhq.runtime._loop\n"
        "print(sorted(m for m in ('nats', 'aiohttp') if m in sys.modules))\n"
        "frayhq.connect\n"
        "print('nats' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True"], out.stdout + out.stderr
