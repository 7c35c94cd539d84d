package amqp

import (
	"net"
	"sync"
)

// corkMax is how many bytes a corked connection holds before it writes them anyway. Small enough
// that the broker starts on a call's first messages while the rest are being encoded, and that a
// call of large feed messages (up to 1 MiB each) never sits in memory twice; large enough that one
// write carries many small messages.
const corkMax = 32 << 10

// corkConn lets the publisher write a group of messages with a few syscalls instead of one per
// message. amqp091-go flushes its buffer after every publish, so each message is a write(2) on the
// socket and, on the broker, a read and a wake-up of the connection's reader. While corked,
// writes are appended to a buffer; uncork (and a full buffer) writes it in one call.
//
// Failure mode: a write that fails while corked is only seen at the flush. The flush then closes
// the socket, so amqp091's reader fails, the connection closes and every pending confirm resolves
// as not acknowledged — the publisher's "unavailable" path, the same as a write error seen at
// once. Nothing is reported confirmed that the broker did not confirm.
type corkConn struct {
	net.Conn

	mu     sync.Mutex
	corked bool
	buf    []byte
	err    error // the first failed write; every later write fails with it
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if !c.corked {
		return c.Conn.Write(p)
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) >= corkMax {
		c.flushLocked()
	}
	return len(p), nil
}

// cork starts holding writes.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork writes what was held and stops holding. Heartbeats and other frames written meanwhile by
// amqp091's own goroutines were held too, for no longer than the group took to write.
func (c *corkConn) uncork() {
	c.mu.Lock()
	c.corked = false
	c.flushLocked()
	c.mu.Unlock()
}

func (c *corkConn) flushLocked() {
	if len(c.buf) == 0 || c.err != nil {
		c.buf = c.buf[:0]
		return
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > corkMax*2 {
		c.buf = nil
	} else {
		c.buf = c.buf[:0]
	}
	if err != nil {
		c.err = err
		_ = c.Conn.Close()
	}
}
