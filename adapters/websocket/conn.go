package websocket

import (
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
)

// Close codes beyond the ones coder/websocket names.
const (
	// StatusTokenExpired closes a socket whose token's exp has passed (design.md §4).
	StatusTokenExpired websocket.StatusCode = 4001
	// statusServiceRestart (1012) asks the client to reconnect (and resume) shortly.
	statusServiceRestart websocket.StatusCode = 1012
)

// conn is one local socket: its user and its bounded send queue.
type conn struct {
	user string
	send chan *frame
	last atomic.Pointer[frame] // last enqueued: Deliver passes a frame once even if a user is named twice

	kickOnce   sync.Once
	kicked     chan struct{}
	kickCode   websocket.StatusCode
	kickReason string

	slow func() // counts a slow-client disconnect
}

func newConn(user string, queue int, slow func()) *conn {
	return &conn{user: user, send: make(chan *frame, queue), kicked: make(chan struct{}), slow: slow}
}

// enqueue never blocks. A full queue means the client (or its network) does not keep up: it is
// closed with 1013 and reconnects with ?since= rather than slowing the consumer and every other
// socket on this instance.
func (c *conn) enqueue(f *frame) {
	if c.last.Swap(f) == f {
		return
	}
	select {
	case c.send <- f:
	default:
		c.kickOnce.Do(func() {
			c.kickCode, c.kickReason = websocket.StatusTryAgainLater, "too slow: reconnect with since"
			close(c.kicked)
			c.slow()
		})
	}
}

// kick asks the writer to close the socket with code (the first reason wins).
func (c *conn) kick(code websocket.StatusCode, reason string) {
	c.kickOnce.Do(func() {
		c.kickCode, c.kickReason = code, reason
		close(c.kicked)
	})
}
