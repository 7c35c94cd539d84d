package testinfra

import (
	"fmt"
	"net"
)

// freePorts returns n distinct ports that are free on 127.0.0.1 right now. It skips the ports the
// system RabbitMQ node and its CLI tools use (25672 distribution, 35672-35682 CLI nodes), which
// may be free at this instant but taken a moment later.
func freePorts(n int) ([]int, error) {
	var out []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for tries := 0; len(out) < n && tries < 100; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		held = append(held, l) // held until we return, so the next pick differs
		p := l.Addr().(*net.TCPAddr).Port
		if p == 25672 || (p >= 35672 && p <= 35682) || p == 4369 {
			continue
		}
		out = append(out, p)
	}
	if len(out) < n {
		return nil, fmt.Errorf("found only %d free ports", len(out))
	}
	return out, nil
}
