package amqp

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
)

// recordConn is a net.Conn that records each Write call.
type recordConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	fail   error
	closed bool
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

func (c *recordConn) Close() error { c.closed = true; return nil }

func TestCorkConnHoldsWritesUntilUncork(t *testing.T) {
	rc := &recordConn{}
	c := &corkConn{Conn: rc}
	c.Write([]byte("a")) // uncorked: straight through
	c.cork()
	for _, s := range []string{"b", "c", "d"} {
		if n, err := c.Write([]byte(s)); n != 1 || err != nil {
			t.Fatalf("corked write = %d, %v", n, err)
		}
	}
	if len(rc.writes) != 1 {
		t.Fatalf("corked writes reached the socket: %q", rc.writes)
	}
	c.uncork()
	if len(rc.writes) != 2 || string(rc.writes[1]) != "bcd" {
		t.Fatalf("writes = %q, want [a bcd]", rc.writes)
	}
	c.Write([]byte("e"))
	if len(rc.writes) != 3 {
		t.Fatalf("uncorked write held: %q", rc.writes)
	}
}

func TestCorkConnBoundsWhatItHolds(t *testing.T) {
	rc := &recordConn{}
	c := &corkConn{Conn: rc}
	c.cork()
	chunk := bytes.Repeat([]byte("x"), 40<<10)
	for range 10 {
		c.Write(chunk)
	}
	for _, w := range rc.writes {
		if len(w) > corkMax+len(chunk) {
			t.Fatalf("one write of %d bytes: held more than corkMax", len(w))
		}
	}
	if len(c.buf) >= corkMax {
		t.Fatalf("holds %d bytes", len(c.buf))
	}
	c.uncork()
	var total int
	for _, w := range rc.writes {
		total += len(w)
	}
	if total != 10*len(chunk) {
		t.Fatalf("wrote %d bytes, want %d", total, 10*len(chunk))
	}
}

// A write error seen only at the flush must close the socket (so amqp091's reader fails and every
// pending confirm resolves as not acknowledged) and fail every later write.
func TestCorkConnFlushErrorClosesTheSocket(t *testing.T) {
	boom := errors.New("broken pipe")
	rc := &recordConn{fail: boom}
	c := &corkConn{Conn: rc}
	c.cork()
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatalf("corked write failed early: %v", err)
	}
	c.uncork()
	if !rc.closed {
		t.Fatal("socket not closed after the flush failed")
	}
	if _, err := c.Write([]byte("next")); !errors.Is(err, boom) {
		t.Fatalf("write after a failed flush = %v, want %v", err, boom)
	}
}
