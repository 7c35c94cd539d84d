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
	mu sync.Mutex
	// first is served before rest: the sockets of a frame with few recipients (add with first),
	// so that another author's post does not wait behind every socket of a big fan-out.
	first, rest fifo
	running     int
	max         int // 0: GOMAXPROCS
	wake        chan struct{}
}

// fifo is a queue of sockets: a slice taken from head, its array reused once taken.
type fifo struct {
	q    []*conn
	head int
}

func (f *fifo) empty() bool { return f.head == len(f.q) }

func (f *fifo) push(cs []*conn) {
	if f.head > 0 && f.empty() {
		clear(f.q)
		f.q, f.head = f.q[:0], 0
	} else if f.head > 1024 && f.head*2 > len(f.q) {
		n := copy(f.q, f.q[f.head:])
		clear(f.q[n:])
		f.q, f.head = f.q[:n], 0
	}
	f.q = append(f.q, cs...)
}

func (f *fifo) pop() *conn {
	if f.empty() {
		return nil
	}
	c := f.q[f.head]
	f.q[f.head] = nil
	f.head++
	return c
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
	if first {
		p.first.push(cs)
	} else {
		p.rest.push(cs)
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
	if c := p.first.pop(); c != nil {
		return c
	}
	return p.rest.pop()
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
			if p.first.empty() && p.rest.empty() {
				p.running--
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
		}
	}
}
