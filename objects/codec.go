package objects

import (
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
	if decMode, err = do.DecMode(); err != nil {
		panic(err)
	}
}

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
		return fmt.Errorf("fray: decode into %T: %w", v, err)
	}
	return nil
}

// RawMessage is an encoded CBOR value carried unchanged inside a record.
type RawMessage = cbor.RawMessage
