package websocket

import (
	"runtime"
	"sync"
	"time"
)

// writers is the hub's pool of writer goroutines: a run queue of sockets with frames waiting,
// served by a few goroutines (GOMAXPROCS by default) that each take one socket, write one batch
// of its frames (conn.round) and move on. A socket is in the queue at most once (conn.writing).
// Nothing here waits for a peer (the wire's writes never block), so a few goroutines serve any
// number of sockets, and no goroutine is started per socket or per burst. Workers are started on
// demand and leave after idleWorker without work: an idle hub has none.
//
// The zero value is ready to use.
type writers struct {
	mu   sync.Mutex
	q    []*conn
	head int
	// first are sockets served before q (add with first): those of a frame with few recipients, so
	// that another author's post does not wait behind every socket of a big fan-out.
	first   []*conn
	running int
	max     int // 0: GOMAXPROCS
	wake    chan struct{}
}

const idleWorker = 5 * time.Second

// push appends sockets to the run queue and makes sure enough workers run.
func (p *writers) push(cs ...*conn) { p.add(false, cs) }

// add queues sockets at the end of the run queue, or, first, ahead of every socket queued
// without it (in order among themselves), and makes sure enough workers run.
func (p *writers) add(first bool, cs []*conn) {
	if len(cs) == 0 {
		return
	}
	p.mu.Lock()
	if p.wake == nil {
		if p.max <= 0 {
			p.max = runtime.GOMAXPROCS(0)
		}
		p.wake = make(chan struct{}, p.max)
	}
	if p.head > 0 && p.head == len(p.q) {
		clear(p.q)
		p.q, p.head = p.q[:0], 0
	} else if p.head > 1024 && p.head*2 > len(p.q) {
		n := copy(p.q, p.q[p.head:])
		clear(p.q[n:])
		p.q, p.head = p.q[:n], 0
	}
	if first {
		p.first = append(p.first, cs...)
	} else {
		p.q = append(p.q, cs...)
	}
	start := min(p.max-p.running, len(cs))
	p.running += start
	wake := len(cs) - start
	p.mu.Unlock()
	for range start {
		go p.work()
	}
	for range wake {
		select {
		case p.wake <- struct{}{}:
		default: // every worker already has a wake-up coming
			return
		}
	}
}

func (p *writers) pop() *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.first); n > 0 {
		c := p.first[0]
		copy(p.first, p.first[1:]) // a few sockets at a time: shifting is cheaper than a ring
		p.first[n-1] = nil
		p.first = p.first[:n-1]
		return c
	}
	if p.head == len(p.q) {
		return nil
	}
	c := p.q[p.head]
	p.q[p.head] = nil
	p.head++
	return c
}

func (p *writers) work() {
	var idle *time.Timer
	var scratch []*frame
	for {
		if c := p.pop(); c != nil {
			scratch = c.round(scratch)
			continue
		}
		if idle == nil {
			idle = time.NewTimer(idleWorker)
		} else {
			idle.Reset(idleWorker)
		}
		select {
		case <-p.wake:
		case <-idle.C:
			p.mu.Lock()
			if p.head == len(p.q) && len(p.first) == 0 {
				p.running--
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
		}
	}
}
