package objects_test

import (
	"fmt"
	"testing"

	"github.com/frayhq/fray/objects"
)

// BenchmarkGetBytes measures a get of an offloaded value just over the
// inline threshold and of a larger one.
func BenchmarkGetBytes(b *testing.B) {
	for _, size := range []int{300 << 10, 4 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			e := newEnvTB(b, objects.Options{})
			ref, err := e.st.PutBytes(e.ctx, pattern(size, 1))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := e.st.GetBytes(e.ctx, ref); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPutBytesDuplicate measures a put of bytes already stored.
func BenchmarkPutBytesDuplicate(b *testing.B) {
	e := newEnvTB(b, objects.Options{})
	v := pattern(300<<10, 2)
	if _, err := e.st.PutBytes(e.ctx, v); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := e.st.PutBytes(e.ctx, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutBytesNew measures puts of fresh 300 KiB values.
func BenchmarkPutBytesNew(b *testing.B) {
	e := newEnvTB(b, objects.Options{})
	v := pattern(300<<10, 3)
	b.SetBytes(int64(len(v)))
	i := 0
	for b.Loop() {
		i++
		v[0], v[1], v[2] = byte(i), byte(i>>8), byte(i>>16)
		if _, err := e.st.PutBytes(e.ctx, v); err != nil {
			b.Fatal(err)
		}
	}
}
