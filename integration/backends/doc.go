// Package backends is the test harness for fray's Ray and Iris dispatcher
// backends against the real systems: it installs pinned Python packages into
// virtualenvs under the build directory (cached between runs), starts a Ray
// head and an Iris local cluster on loopback, and stops them after, leaving no
// process behind.
//
//	func TestMain(m *testing.M) { os.Exit(backends.Main(m)) } // m.Run, then stop the heads
//
//	func TestSomething(t *testing.T) {
//		head := backends.Ray(t) // installed and started once per test binary
//		b, _ := ray.New(ray.Options{Address: head.Address})
//		...
//	}
//
// A head that cannot be installed or started fails the test with the reason;
// nothing is ever skipped.
package backends
