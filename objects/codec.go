package objects

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// The codec every fray record and value goes through: CBOR with core
// deterministic encoding (RFC 8949 §4.2.1), so equal values encode to equal
// bytes and content addresses are stable across processes and languages.
var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	eo := cbor.CoreDetEncOptions()
	eo.Time = cbor.TimeRFC3339Nano
	if encMode, err = eo.EncMode(); err != nil {
		panic(err)
	}
	do := cbor.DecOptions{
		MaxNestedLevels:  64,
		MaxArrayElements: 1 << 27,
		MaxMapPairs:      1 << 27,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		DefaultMapType:   reflect.TypeOf(map[string]any(nil)),
	}
	// A pickled Python value decodes into an error naming the tag, never
	// into an opaque cbor.Tag.
	tags := cbor.NewTagSet()
	if err := tags.Add(cbor.TagOptions{DecTag: cbor.DecTagRequired, EncTag: cbor.EncTagRequired}, reflect.TypeOf(pythonValue{}), PythonTag); err != nil {
		panic(err)
	}
	if decMode, err = do.DecModeWithTags(tags); err != nil {
		panic(err)
	}
}

// PythonTag is the CBOR tag number wrapping a pickled Python value: a byte
// string holding cloudpickle.dumps(obj), for the Python objects CBOR
// cannot carry natively. 1718772089 is 0x66726179, "fray" in ASCII, in
// IANA's first-come-first-served range. See PROTOCOL.md.
const PythonTag = 1718772089

// ErrPythonValue means a value holds a pickled Python object (CBOR tag
// PythonTag), which only Python can decode.
var ErrPythonValue = errors.New("objects: CBOR tag 1718772089 (a pickled Python value) cannot be decoded outside Python")

// pythonValue is what the decoder maps PythonTag onto: decoding it fails.
type pythonValue struct{}

func (*pythonValue) UnmarshalCBOR([]byte) error { return ErrPythonValue }

// pythonTagHead is the encoded head of tag PythonTag.
var pythonTagHead = []byte{0xda, 0x66, 0x72, 0x61, 0x79}

// Marshal encodes v as deterministic CBOR.
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("fray: encode %T: %w", v, err)
	}
	return b, nil
}

// Unmarshal decodes CBOR data into v, which must be a non-nil pointer.
func Unmarshal(data []byte, v any) error {
	if err := decMode.Unmarshal(data, v); err != nil {
		if !errors.Is(err, ErrPythonValue) && bytes.Contains(data, pythonTagHead) {
			// A typed target met the tag's content first.
			return fmt.Errorf("fray: decode into %T: %w (%v)", v, ErrPythonValue, err)
		}
		return fmt.Errorf("fray: decode into %T: %w", v, err)
	}
	return nil
}

// RawMessage is an encoded CBOR value carried unchanged inside a record.
type RawMessage = cbor.RawMessage
