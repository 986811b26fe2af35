package frayt

import "testing"

// SeedRecords adds to f each record encoded with marshal, then the
// hostile inputs every wire decoder's fuzz target starts from: nothing,
// garbage, a version too large for any integer, and deeply nested
// indefinite arrays.
func SeedRecords(f *testing.F, marshal func(any) ([]byte, error), recs ...any) {
	f.Helper()
	for _, r := range recs {
		b, err := marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0x00, 0x13})
	f.Add([]byte{0xa1, 0x61, 0x76, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // {"v": huge}
	f.Add([]byte{0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f})                         // nested indefinite arrays
}
