// Package wirevec checks and writes the wire conformance vectors of
// testdata/wire: CBOR bytes that decode into a Go record type and encode
// back to the same bytes, with a JSON description beside them that the
// Python suite checks too (python/tests/test_wire.py).
package wirevec
