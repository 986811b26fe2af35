package daemon

import (
	"errors"
	"net"
	"syscall"
)

// Listen opens a TCP listener on addr for the command-line flag named
// flag (say "--metrics-addr"). A malformed address or one in use is a
// UsageError naming the flag (exit 2).
func Listen(flag, addr string) (net.Listener, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, Usagef("%s %q: want HOST:PORT, e.g. 127.0.0.1:9090 (port 0 picks a free one)", flag, addr)
	}
	l, err := net.Listen("tcp", addr)
	switch {
	case err == nil:
		return l, nil
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, Usagef("%s %s: address already in use; pick another port (or 0 for a free one)", flag, addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return nil, Usagef("%s %s: no such address on this host", flag, addr)
	}
	return nil, Usagef("%s %s: %v", flag, addr, err)
}

// IsLoopback reports whether l listens on a loopback address only.
func IsLoopback(l net.Listener) bool {
	a, ok := l.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}
