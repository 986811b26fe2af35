package wirevec

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/frayhq/fray/objects"
	"github.com/fxamacker/cbor/v2"
)

// Update rewrites the wire conformance vectors in testdata/wire from
// the Go values the tests define: go test ./... -run Wire -update-wire.
var Update = flag.Bool("update-wire", false, "rewrite testdata/wire from the Go values")

// WireDir is the repository's testdata/wire directory.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", "wire")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("frayt: no go.mod above the working directory")
		}
		dir = parent
	}
}

// WireVector checks (or with -update-wire writes) the vector name: its
// CBOR bytes decode into a value of v's type and encode back to the same
// bytes, and equal the encoding of v. The JSON description beside it holds
// the record name, the Go type and the decoded data item (byte strings as
// {"$hex": …}, tags as {"$tag": n, "$value": …}), which the Python suite
// checks too.
func Check(t *testing.T, name, record string, v any) {
	t.Helper()
	dir := Dir(t)
	want, err := objects.Marshal(v)
	if err != nil {
		t.Fatalf("%s: encode: %v", name, err)
	}
	cborPath := filepath.Join(dir, name+".cbor")
	if *Update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		desc, err := Describe(want)
		if err != nil {
			t.Fatalf("%s: describe: %v", name, err)
		}
		j, err := json.MarshalIndent(map[string]any{
			"record": record, "go_type": reflect.TypeOf(v).Elem().String(), "value": desc,
		}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cborPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".json"), append(j, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(cborPath)
	if err != nil {
		t.Fatalf("%s: %v (regenerate with -update-wire)", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: the Go value encodes to\n%x\nthe vector is\n%x", name, want, got)
	}
	back := reflect.New(reflect.TypeOf(v).Elem())
	if err := objects.Unmarshal(got, back.Interface()); err != nil {
		t.Fatalf("%s: decode: %v", name, err)
	}
	again, err := objects.Marshal(back.Interface())
	if err != nil {
		t.Fatalf("%s: re-encode: %v", name, err)
	}
	if !bytes.Equal(again, got) {
		t.Fatalf("%s: decoded and re-encoded to\n%x\nnot\n%x", name, again, got)
	}
}

// Describe turns CBOR data into the JSON form of the vector descriptions.
func Describe(data []byte) (any, error) {
	var v any
	dm, err := cbor.DecOptions{DefaultMapType: reflect.TypeOf(map[any]any(nil))}.DecMode()
	if err != nil {
		return nil, err
	}
	if err := dm.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return describe(v), nil
}

func describe(v any) any {
	switch x := v.(type) {
	case []byte:
		return map[string]any{"$hex": hex.EncodeToString(x)}
	case cbor.Tag:
		return map[string]any{"$tag": x.Number, "$value": describe(x.Content)}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = describe(e)
		}
		return out
	case map[any]any:
		out := map[string]any{}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k.(string))
		}
		sort.Strings(keys)
		for _, k := range keys {
			out[k] = describe(x[k])
		}
		return out
	}
	return v
}
