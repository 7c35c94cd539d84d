package amqptest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP to the broker; Cut drops every connection through it, as a network failure
// would, while new connections are still accepted.
type Proxy struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	// gate is held while the proxy is paused: nothing more reaches the broker.
	gate sync.RWMutex
}

// NewProxy listens on a free local port and forwards to target (usually Addr(), the test
// broker); it closes in t.Cleanup.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	return NewProxyOn(tb, "127.0.0.1:0", target)
}

// NewProxyOn is NewProxy listening on addr: a test can point a client at a dead port first and
// bring "the broker" up there later.
func NewProxyOn(tb testing.TB, addr, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatalf("listen on %s: %v", addr, err)
	}
	p := &Proxy{ln: ln}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // listener closed
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(gated{u, &p.gate}, c); u.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, u); c.Close() })
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is the test broker's URL through the proxy (URLVia the proxy's address).
func (p *Proxy) URL() string { return URLVia(p.Addr()) }

// Pause holds everything clients send from now on (the connections stay open, the broker hears
// nothing) until Resume: a broker that stopped reading, or a congested link.
func (p *Proxy) Pause() { p.gate.Lock() }

// Resume delivers what Pause held, in order, and forwards again.
func (p *Proxy) Resume() { p.gate.Unlock() }

// gated writes only while its gate is not held by Pause.
type gated struct {
	w    io.Writer
	gate *sync.RWMutex
}

func (g gated) Write(b []byte) (int, error) {
	g.gate.RLock()
	defer g.gate.RUnlock()
	return g.w.Write(b)
}

// Cut closes every connection open through the proxy.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
