package websocket

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// wire is the byte stream under one socket's websocket.Conn: the net.Conn that coder/websocket
// gets from the hijack. coder/websocket writes every frame through a small bufio.Writer that it
// flushes at the end of each frame, i.e. one Write on the wire per frame; the wire decides when
// those bytes reach the kernel:
//
//   - during a batch (begin … end), by the socket's owner, frames are only appended: the batch
//     goes out with one write(2) at end, however many frames (each still its own websocket
//     message, as coder/websocket framed them one by one, unless the client asked for line
//     batches: batch.go);
//   - outside a batch (coder/websocket's pongs, pings and close frames), at once.
//
// No write on the wire ever waits for the peer: each is one non-blocking write(2) (through the
// socket's syscall.RawConn). What the kernel does not take stays in out, and a goroutine is
// started that waits for the socket to drain (bounded by timeout) and calls the owner's drained
// callback. A socket that reads at a normal pace never needs it; one that falls behind costs a
// goroutine only while it is behind. So a shared pool of writers serves every socket, and a peer
// that stops reading holds up nobody but itself.
type wire struct {
	net.Conn
	in      *input          // what Read serves (the read-ahead bytes, then the conn, bounded once closing); nil: the conn
	raw     syscall.RawConn // nil: the conn has no fd (tests, TLS); every write then blocks, bounded
	timeout time.Duration   // a blocked write that makes no progress for this long fails
	writes  prometheus.Counter

	mu       sync.Mutex
	out      []byte // out[off:] is accepted but not yet written; nil (pooled) when empty
	off      int
	hold     bool    // a batch is being assembled: Write only appends
	flushing bool    // the drain goroutine owns the writes of out
	owner    drainer // told once by the drain goroutine when out is empty (or the socket failed)
	err      error   // first write error: the socket is dead, every later Write fails
	// control counts the bytes coder/websocket queued outside batches while a drain runs.
	control int
}

// maxControlBacklog bounds what coder/websocket may queue on a wire that the peer does not
// drain: control frames are tiny, so only a peer that sends pings without reading gets here.
const maxControlBacklog = 64 << 10

// drainer is told when a batch that the kernel did not take at once has been written (nil error)
// or the socket failed.
type drainer interface{ drained(error) }

type drainFunc func(error)

func (f drainFunc) drained(err error) { f(err) }

var errControlBacklog = errors.New("websocket: peer does not read its control frames")

func newWire(nc net.Conn, timeout time.Duration, writes prometheus.Counter) *wire {
	w := &wire{Conn: nc, timeout: timeout, writes: writes}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}
	return w
}

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// Write is called by coder/websocket, under its frame lock, once per frame (control frames are
// at most 127 bytes and always arrive whole: the bufio.Writer in front of the wire is larger).
func (w *wire) Read(p []byte) (int, error) {
	if w.in == nil {
		return w.Conn.Read(p)
	}
	return w.in.Read(p)
}

func (w *wire) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if !w.hold && w.flushing {
		if w.control += len(p); w.control > maxControlBacklog {
			return 0, errControlBacklog
		}
	}
	w.appendLocked(p)
	if w.hold || w.flushing {
		return len(p), nil
	}
	if !w.flushNowLocked() {
		w.startDrainLocked(nil)
	}
	return len(p), nil
}

func (w *wire) appendLocked(p []byte) {
	if w.out == nil {
		w.out = (*outPool.Get().(*[]byte))[:0]
		w.off = 0
	}
	w.out = append(w.out, p...)
}

// begin starts a batch: frames written on the websocket.Conn from now on only queue up.
func (w *wire) begin() {
	w.mu.Lock()
	w.hold = true
	w.mu.Unlock()
}

// end closes the batch and writes it with one non-blocking write. It reports pending when the
// kernel did not take everything: then owner.drained is called, from another goroutine, once the
// rest is written or the socket failed (owner may be nil). Without pending, owner is not called;
// err is the socket's write error, if it has one.
func (w *wire) end(owner drainer) (pending bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hold = false
	if w.err != nil {
		w.releaseLocked()
		return false, w.err
	}
	if w.flushing { // a control frame outside the batch started a drain: it takes ours too
		w.owner = owner
		return true, nil
	}
	if w.flushNowLocked() {
		return false, w.err
	}
	w.startDrainLocked(owner)
	return true, nil
}

// endAndWait closes the batch and returns once it is written (for an owner that may block: the
// handler's goroutine during the upgrade and resume).
func (w *wire) endAndWait() error {
	done := make(chan error, 1)
	pending, err := w.end(drainFunc(func(err error) { done <- err }))
	if !pending {
		return err
	}
	return <-done
}

// flushNowLocked writes out[off:] without waiting. It reports whether out is now empty (or the
// socket failed, with w.err set).
func (w *wire) flushNowLocked() bool {
	for w.off < len(w.out) {
		n, err := w.writeNow(w.out[w.off:])
		w.off += n
		if err == errWouldBlock {
			return false
		}
		if err != nil {
			w.failLocked(err)
			return true
		}
	}
	w.releaseLocked()
	return true
}

func (w *wire) releaseLocked() {
	if w.out == nil {
		return
	}
	if cap(w.out) <= 256<<10 { // keep the pool to batch-sized buffers
		b := w.out[:0]
		outPool.Put(&b)
	}
	w.out, w.off = nil, 0
}

func (w *wire) failLocked(err error) {
	if w.err == nil {
		w.err = err
	}
	w.releaseLocked()
}

var errWouldBlock = errors.New("would block")

// writeNow is one write(2) on the socket's fd, never waiting for it to become writable.
func (w *wire) writeNow(b []byte) (int, error) {
	w.writes.Inc()
	if w.raw == nil {
		// No fd to poll: a blocking write, bounded by the timeout.
		_ = w.Conn.SetWriteDeadline(time.Now().Add(w.timeout))
		n, err := w.Conn.Write(b)
		_ = w.Conn.SetWriteDeadline(time.Time{})
		return n, err
	}
	var n int
	var werr error
	err := w.raw.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), b)
			if werr != syscall.EINTR {
				return true // done, or would block: never wait here
			}
		}
	})
	if n < 0 {
		n = 0
	}
	switch {
	case err != nil:
		return n, err
	case werr == syscall.EAGAIN:
		return n, errWouldBlock
	case werr != nil:
		return n, werr
	case n == 0 && len(b) > 0:
		return 0, errWouldBlock
	}
	return n, nil
}

func (w *wire) startDrainLocked(owner drainer) {
	w.flushing = true
	w.owner = owner
	go w.drain()
}

// drain writes what the kernel did not take, waiting for the socket to become writable; a
// socket that takes nothing for timeout is closed (one that takes something is not, however
// long the rest takes).
func (w *wire) drain() {
	for {
		w.mu.Lock()
		if w.err != nil || w.off == len(w.out) {
			w.flushing, w.control = false, 0
			err := w.err
			w.releaseLocked()
			owner := w.owner
			w.owner = nil
			w.mu.Unlock()
			if err != nil {
				w.Conn.Close()
			}
			if owner != nil {
				owner.drained(err)
			}
			return
		}
		// Write a copy of the view: appends meanwhile may move out, never its written prefix.
		b := w.out[w.off:]
		w.mu.Unlock()
		_ = w.Conn.SetWriteDeadline(time.Now().Add(w.timeout))
		w.writes.Inc()
		n, err := w.Conn.Write(b)
		_ = w.Conn.SetWriteDeadline(time.Time{})
		w.mu.Lock()
		w.off += n
		// The deadline bounds a write that makes no progress, not the time a slow reader needs
		// for all of b: a client that took bytes within it is still reading, and the next pass
		// gives it a fresh timeout for the rest (net.Conn stays usable after a deadline passes).
		if err != nil && !(n > 0 && errors.Is(err, os.ErrDeadlineExceeded)) {
			w.failLocked(err)
		}
		w.mu.Unlock()
	}
}
