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
