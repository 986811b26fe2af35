package objects_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/frayhq/fray/objects"
)

var sampleRef = objects.Ref{V: 1, Bucket: "FRAY_OBJECTS", Size: 3,
	Digest: "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}

func TestRefEncodesWithDocumentedCBORAndJSONKeys(t *testing.T) {
	b, err := objects.Marshal(sampleRef)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := objects.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"v": uint64(1), "bucket": "FRAY_OBJECTS", "digest": sampleRef.Digest, "size": uint64(3)}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("CBOR map %v, want %v", m, want)
	}
	j, err := json.Marshal(sampleRef)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(j); got != `{"v":1,"bucket":"FRAY_OBJECTS","digest":"`+sampleRef.Digest+`","size":3}` {
		t.Fatalf("JSON %s", got)
	}
	got, err := objects.DecodeRef(b)
	if err != nil || got != sampleRef {
		t.Fatalf("DecodeRef: %v, %v", got, err)
	}
}

func TestRefStringNamesBucketDigestAndSize(t *testing.T) {
	if s := sampleRef.String(); s != "FRAY_OBJECTS/"+sampleRef.Digest+" (3 bytes)" {
		t.Fatal(s)
	}
}

func TestDecodeRefRejectsMalformedRefs(t *testing.T) {
	mod := func(f func(*objects.Ref)) objects.Ref { r := sampleRef; f(&r); return r }
	bad := map[string]objects.Ref{
		"version 0":        mod(func(r *objects.Ref) { r.V = 0 }),
		"version 2":        mod(func(r *objects.Ref) { r.V = 2 }),
		"no bucket":        mod(func(r *objects.Ref) { r.Bucket = "" }),
		"bucket with dot":  mod(func(r *objects.Ref) { r.Bucket = "A.B" }),
		"other algorithm":  mod(func(r *objects.Ref) { r.Digest = "md5:" + strings.Repeat("0", 32) }),
		"short digest":     mod(func(r *objects.Ref) { r.Digest = "sha256:abcd" }),
		"upper-case hex":   mod(func(r *objects.Ref) { r.Digest = strings.ToUpper(r.Digest[:7]) + strings.ToUpper(r.Digest[7:]) }),
		"upper-case digit": mod(func(r *objects.Ref) { r.Digest = "sha256:" + strings.ToUpper(r.Digest[7:]) }),
		"negative size":    mod(func(r *objects.Ref) { r.Size = -1 }),
	}
	for name, r := range bad {
		b, err := objects.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := objects.DecodeRef(b); !errors.Is(err, objects.ErrBadRef) {
			t.Errorf("%s: %v, want ErrBadRef", name, err)
		}
	}
	for _, junk := range [][]byte{nil, {0xff}, {0xa1, 0x61, 0x76, 0x61, 0x78}} {
		if _, err := objects.DecodeRef(junk); !errors.Is(err, objects.ErrBadRef) {
			t.Errorf("%x: %v, want ErrBadRef", junk, err)
		}
	}
}

// FuzzRefDecode feeds arbitrary bytes to the Ref decoder: it never panics,
// and whatever it accepts re-encodes to a ref that decodes equal.
func FuzzRefDecode(f *testing.F) {
	b, _ := objects.Marshal(sampleRef)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := objects.DecodeRef(data)
		if err != nil {
			if !errors.Is(err, objects.ErrBadRef) {
				t.Fatalf("error %v does not wrap ErrBadRef", err)
			}
			return
		}
		_ = r.String()
		b, err := objects.Marshal(r)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", r, err)
		}
		r2, err := objects.DecodeRef(b)
		if err != nil || r2 != r {
			t.Fatalf("round trip %+v -> %+v, %v", r, r2, err)
		}
	})
}
