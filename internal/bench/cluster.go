package bench

import (
	"context"
	"fmt"
	"net"
	"path/filepath"

	"github.com/frayhq/fray/broker"
)

// startBrokers starts n in-process brokers on file storage under dir: one
// broker, or a cluster of n nodes joined by routes on loopback. The
// caller shuts them down.
func startBrokers(ctx context.Context, n int, dir string) ([]*broker.Server, error) {
	if n == 1 {
		srv, err := broker.Start(ctx, broker.Options{StoreDir: dir, Port: -1})
		if err != nil {
			return nil, err
		}
		return []*broker.Server{srv}, nil
	}
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	var srvs []*broker.Server
	for i := range n {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("127.0.0.1:%d", p))
			}
		}
		srv, err := broker.Start(ctx, broker.Options{Port: -1, StoreDir: filepath.Join(dir, fmt.Sprintf("n%d", i)),
			ServerName: fmt.Sprintf("bench-n%d", i), ClusterName: "fray-bench", ClusterPort: ports[i], Routes: routes})
		if err != nil {
			shutdown(srvs)
			return nil, fmt.Errorf("bench: start node %d of %d: %w", i, n, err)
		}
		srvs = append(srvs, srv)
	}
	return srvs, nil
}

func shutdown(srvs []*broker.Server) {
	for _, s := range srvs {
		s.Shutdown()
	}
}

// freePorts returns n TCP ports free on loopback right now.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
