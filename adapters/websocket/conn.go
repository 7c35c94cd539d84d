package websocket

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Close codes beyond the ones coder/websocket names.
const (
	// StatusTokenExpired closes a socket whose token's exp has passed (design.md §4).
	StatusTokenExpired websocket.StatusCode = 4001
	// statusServiceRestart (1012) asks the client to reconnect (and resume) shortly.
	statusServiceRestart websocket.StatusCode = 1012
)

// conn is one local socket. An idle socket costs no goroutine of ours: the only one parked per
// socket is coder/websocket's CloseRead reader (pongs, close handshake, a client that leaves). A
// writer goroutine runs only while frames are queued and exits when the queue is drained; pings
// and token expiry are timers.
type conn struct {
	h    *Hub
	user string
	ws   *websocket.Conn // nil until the upgrade
	// kinds are the frame kinds this socket forwards (?types=; defaultKinds), fixed at the
	// handshake: live frames of other kinds are not queued and resume does not read them.
	kinds []string

	mu sync.Mutex
	// queue[head:] are the frames not yet written, oldest first. Allocated on the first frame and
	// dropped when drained: an idle socket holds no buffer.
	queue []*frame
	head  int
	// queued is the body bytes of queue[head:], held under Config.SendQueueBytes.
	queued int
	last   *frame // last enqueued: Deliver passes a frame once even if a user is named twice
	// writing is true while a goroutine owns the socket's writes: the handler (upgrade, resume)
	// or a drain started by enqueue or kick. Only the owner writes or closes.
	writing bool
	closed  bool // the socket ended: nothing more is written
	kicked  bool
	code    websocket.StatusCode
	reason  string
	// resumedUpTo is the highest position sent by resume: live frames at or below it were
	// already sent from PostgreSQL and are dropped (no duplicate across the switch).
	resumedUpTo int64
	ping        *time.Timer
	expiry      *time.Timer
}

// accepts reports whether the socket forwards f (its ?types=).
func (c *conn) accepts(f *frame) bool { return slices.Contains(c.kinds, f.kind) }

// enqueue never blocks. A full queue means the client (or its network) does not keep up: it is
// closed with 1013 and reconnects with ?since= rather than slowing the consumer and every other
// socket on this instance.
func (c *conn) enqueue(f *frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.kicked || c.last == f {
		return
	}
	c.last = f
	// An empty queue takes any frame: a socket with nothing waiting is not behind.
	if c.queued > 0 && c.queued+len(f.body) > c.h.cfg.SendQueueBytes {
		c.h.metrics.slow.Inc()
		c.kickLocked(websocket.StatusTryAgainLater, "too slow: reconnect with since")
		return
	}
	if c.queue == nil {
		c.queue = make([]*frame, 0, 4)
	} else if len(c.queue) == cap(c.queue) && c.head > 0 {
		// A queue that never drains completely must not grow with every frame ever sent.
		n := copy(c.queue, c.queue[c.head:])
		clear(c.queue[n:])
		c.queue, c.head = c.queue[:n], 0
	}
	c.queue = append(c.queue, f)
	c.queued += len(f.body)
	c.startLocked()
}

// kick asks for the socket to be closed with code (the first reason wins); queued frames are
// dropped.
func (c *conn) kick(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kickLocked(code, reason)
}

func (c *conn) kickLocked(code websocket.StatusCode, reason string) {
	if c.kicked || c.closed {
		return
	}
	c.kicked, c.code, c.reason = true, code, reason
	c.startLocked()
}

// startLocked starts a drain unless a goroutine already owns the writes (it will see the new
// frame or the kick before it lets go).
func (c *conn) startLocked() {
	if c.writing {
		return
	}
	c.writing = true
	go c.drain()
}

// drain writes queued frames in order and returns when the queue is empty (or closes the socket
// after a kick). The caller must own the writes (writing == true); drain gives them up.
func (c *conn) drain() {
	for {
		c.mu.Lock()
		if c.closed {
			c.writing, c.queue, c.head, c.queued = false, nil, 0, 0
			c.mu.Unlock()
			return
		}
		if c.kicked {
			// Keep writing = true: nobody writes after the close frame.
			code, reason := c.code, c.reason
			c.queue, c.head, c.queued = nil, 0, 0
			c.mu.Unlock()
			c.close(code, reason)
			return
		}
		if c.head == len(c.queue) {
			c.writing, c.queue, c.head, c.queued = false, nil, 0, 0
			c.mu.Unlock()
			return
		}
		f := c.queue[c.head]
		c.queue[c.head] = nil
		c.head++
		c.queued -= len(f.body)
		skip := f.position <= c.resumedUpTo
		c.mu.Unlock()
		if skip {
			continue
		}
		if err := c.write(f); err != nil {
			c.h.log.Debug("write frame", slog.String("user_id", c.user), slog.Any("err", err))
			c.ws.CloseNow()
			c.mu.Lock()
			c.closed, c.writing, c.queue, c.head, c.queued = true, false, nil, 0, 0
			c.mu.Unlock()
			return
		}
	}
}

func (c *conn) write(f *frame) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.WriteTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, f.body); err != nil {
		return err
	}
	c.h.metrics.framesSent.Inc()
	if f.live && !f.createdAt.IsZero() {
		c.h.metrics.latency.Observe(time.Since(f.createdAt).Seconds())
	}
	return nil
}

// close runs the close handshake (coder/websocket waits up to 5 s for the peer's close frame).
func (c *conn) close(code websocket.StatusCode, reason string) {
	if code == websocket.StatusTryAgainLater {
		c.h.log.Info("closing slow websocket client", slog.String("user_id", c.user))
	}
	if err := c.ws.Close(code, reason); err != nil && !errors.Is(err, context.Canceled) {
		c.h.log.Debug("close websocket", slog.String("user_id", c.user), slog.Any("err", err))
	}
}

// startTimers arms the keepalive and the token expiry. A timer costs ~100 bytes and no goroutine
// until it fires; sockets connect at different times, so pings spread over the interval.
func (c *conn) startTimers(expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.expiry = time.AfterFunc(time.Until(expires), func() { c.kick(StatusTokenExpired, "token expired") })
	c.ping = time.AfterFunc(c.h.cfg.PingInterval, c.keepalive)
}

// keepalive pings once and re-arms; a peer that does not answer within PingTimeout is dropped.
func (c *conn) keepalive() {
	ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.PingTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil {
		c.h.log.Debug("ping", slog.String("user_id", c.user), slog.Any("err", err))
		c.ws.CloseNow()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.ping.Reset(c.h.cfg.PingInterval)
	}
}

// ended marks the socket closed (its reader saw the end) and stops the timers.
func (c *conn) ended() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if !c.writing {
		c.queue, c.head, c.queued = nil, 0, 0
	}
	if c.ping != nil {
		c.ping.Stop()
	}
	if c.expiry != nil {
		c.expiry.Stop()
	}
}
