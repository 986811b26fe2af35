package frayt

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy forwards TCP connections from its own loopback port to a server.
// Cut makes the server unreachable through it, as a dead or partitioned
// server is: the port refuses connections and open ones are closed.
// Restore serves again on the same port. It shows on demand the faults a
// real server cannot: a client losing its connection (or a backend head
// going away) while the server itself stays up.
type Proxy struct {
	// URL is the server's URL with the proxy's address.
	URL string

	t      testing.TB
	target string // host:port
	addr   string // the proxy's host:port

	mu    sync.Mutex
	l     net.Listener // nil while cut
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup // the accept loop and the copies
}

// NewProxy serves a proxy to the server at serverURL (scheme://host:port,
// e.g. nats:// or http://) until the test ends.
func NewProxy(t testing.TB, serverURL string) *Proxy {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, target: u.Host, addr: l.Addr().String(), conns: map[net.Conn]struct{}{}}
	u.Host = p.addr
	p.URL = u.String()
	p.serve(l)
	t.Cleanup(func() {
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Cut closes the proxy's port and every connection through it.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Restore listens on the proxy's port again.
func (p *Proxy) Restore() {
	p.t.Helper()
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy: listen on %s again: %v", p.addr, err)
	}
	p.serve(l)
}

func (p *Proxy) serve(l net.Listener) {
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed by Cut
			}
			p.forward(c)
		}
	}()
}

// forward copies between c and a new connection to the server, both closed
// when either side ends or Cut is called.
func (p *Proxy) forward(c net.Conn) {
	h, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.l == nil { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		h.Close()
		return
	}
	p.conns[c], p.conns[h] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := func() {
		c.Close()
		h.Close()
		p.mu.Lock()
		delete(p.conns, c)
		delete(p.conns, h)
		p.mu.Unlock()
	}
	p.wg.Add(2)
	go func() { defer p.wg.Done(); _, _ = io.Copy(h, c); done() }()
	go func() { defer p.wg.Done(); _, _ = io.Copy(c, h); done() }()
}
