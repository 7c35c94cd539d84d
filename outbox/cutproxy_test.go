package outbox_test

import (
	"io"
	"net"
	"sync"
	"testing"
)

// cutProxy forwards connections to target and can cut every open one at once (the broker
// connection dies mid-stream; new connections are accepted again right away). hold stops
// forwarding from the broker (confirms) on the open connections until the next cut, so batches
// pile up in flight; connections opened later are not held (their handshake must pass).
type cutProxy struct {
	mu    sync.Mutex
	cond  *sync.Cond
	conns []*proxied
	cuts  int
}

type proxied struct {
	client, broker net.Conn
	held           bool
}

func newCutProxy(t *testing.T, target string) (*cutProxy, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{}
	p.cond = sync.NewCond(&p.mu)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			pc := &proxied{client: c, broker: up}
			p.mu.Lock()
			p.conns = append(p.conns, pc)
			p.mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(up, c); _ = up.Close() })
			wg.Go(func() { _, _ = io.Copy(c, heldReader{p, pc}); _ = c.Close() })
		}
	})
	return p, ln.Addr().String()
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.conns {
		_ = pc.client.Close()
		_ = pc.broker.Close()
		pc.held = false
	}
	p.conns = nil
	p.cuts++
	p.cond.Broadcast()
}

func (p *cutProxy) hold() {
	p.mu.Lock()
	for _, pc := range p.conns {
		pc.held = true
	}
	p.mu.Unlock()
}

// heldReader keeps what it reads from the broker while its connection is held. It checks after
// reading, so a read already waiting when hold is called is held too.
type heldReader struct {
	p  *cutProxy
	pc *proxied
}

func (h heldReader) Read(b []byte) (int, error) {
	n, err := h.pc.broker.Read(b)
	h.p.mu.Lock()
	for h.pc.held {
		h.p.cond.Wait()
	}
	h.p.mu.Unlock()
	return n, err
}

// The riskiest edge of the pipelined relay: batch N+1 is claimed and published while batch N's
// confirms are outstanding. When the broker connection dies under batch N, its unconfirmed rows
// are released; rows of the same authors in N+1 may meanwhile be confirmed on a new connection.
// Those must be released too (and published again after the released rows), never marked relayed
// ahead of them: per author, relayed positions grow with event order, the last delivery of every
