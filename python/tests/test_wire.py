"""The wire conformance vectors of testdata/wire, from Python: every CBOR
record decodes to the data item its JSON description states and re-encodes
to the same bytes (the Go tests do the same with the Go types), and the
object metadata frayhq writes is byte for byte the vector nats.go reads."""

import json

import cbor2
import pytest

from conftest import ROOT
from frayhq import _codec, _objects

WIRE = ROOT / "testdata" / "wire"
VECTORS = sorted(p.stem for p in WIRE.glob("*.cbor"))


def _from_description(v):
    if isinstance(v, dict):
        if set(v) == {"$hex"}:
            return bytes.fromhex(v["$hex"])
        if set(v) == {"$tag", "$value"}:
            return cbor2.CBORTag(v["$tag"], _from_description(v["$value"]))
        return {k: _from_description(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_from_description(x) for x in v]
    return v


def test_the_vectors_cover_every_record():
    records = {json.loads((WIRE / f"{n}.json").read_text())["record"] for n in VECTORS}
    assert {
        "Task",
        "Result",
        "ErrorInfo",
        "Ref",
        "Call",
        "Reply",
        "Record",
        "JobRequest",
        "SubmitRequest",
        "value",
    } <= records


@pytest.mark.parametrize("name", VECTORS)
def test_vector_decodes_and_reencodes_byte_for_byte(name):
    data = (WIRE / f"{name}.cbor").read_bytes()
    desc = json.loads((WIRE / f"{name}.json").read_text())
    item = _codec.loads_plain(data, name)
    assert item == _from_description(desc["value"])
    assert _codec.dumps_plain(item) == data


def test_pickle_tag_vector_is_the_python_value():
    assert _codec.loads((WIRE / "pickle_tag.cbor").read_bytes()) == {"x": {1, 2}, "y": 3}


def test_task_vectors_decode_as_the_client_reads_them():
    task = _codec.loads_plain((WIRE / "task.cbor").read_bytes())
    assert _codec.loads(task["arg"]) == {"n": 1, "s": "x"}
    ref = _codec.Ref.from_wire(_codec.loads_plain((WIRE / "task_arg_ref.cbor").read_bytes())["arg_ref"])
    assert ref.size == 300000 and ref.bucket == "FRAY_OBJECTS"


def test_object_metadata_is_what_frayhq_writes():
    vec = json.loads((WIRE / "object_meta.json").read_text())
    i = vec["inputs"]
    text = _objects.meta_json(i["name"], i["nuid"], i["size"], i["chunks"], i["digest"]).decode()
    assert text == vec["text"]
