package websocket

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/socialnet/social/domain"
)

// Close codes beyond the ones coder/websocket names.
const (
	// StatusTokenExpired closes a socket whose token's exp has passed (design.md §4).
	StatusTokenExpired websocket.StatusCode = 4001
)

// conn is one local socket. An idle socket costs one goroutine, its reader (readUntilClosed:
// pongs, the close handshake, a client that leaves).
// Frames are written by the hub's writers (writers.go), a few goroutines shared by every socket,
// in batches: one round takes what is queued, up to maxBatchBytes, and the socket's wire writes
// it with one syscall. Pings and token expiry are timers.
type conn struct {
	h    *Hub
	user string
	addr string          // the client's address (Config.ClientAddress), for MaxSocketsPerAddress
	ws   *websocket.Conn // nil until the upgrade
	wire *wire           // under ws: holds a batch until one write(2)
	in   *input          // under ws: what it reads, bounded once closing
	// kinds are the frame kinds this socket forwards (?types=; defaultKinds), fixed at the
	// handshake: live frames of other kinds are not queued and resume does not read them.
	kinds []string

	mu sync.Mutex
	// queue holds the frames not yet written: post frames under Config.SendQueueBytes, dialog
	// frames under Config.DialogQueueBytes (shed.go), so that someone else's messages never cost
	// the user a post frame. Reset when the socket goes idle or ends.
	queue frameQueue
	// shedding: dialog frames are being dropped until the ones queued are written; shedUpTo is the
	// last position dropped that no resync frame (with kinds) has covered yet (0: none).
	shedding bool
	shedUpTo int64
	last     *frame // last enqueued: Deliver passes a frame once even if a user is named twice
	// gapSeen are the positions a broker reconnect's gap fill queued (nil otherwise): their live
	// copies, routed around the reconnect, are dropped; forgotten once a later position arrives
	// live (gapMax), so a replay of them later still goes out.
	gapSeen map[int64]struct{}
	gapMax  int64
	// writing is true while someone owns the socket's writes: the handler (upgrade, resume), a
	// writer round, the run queue (the socket waits in it for a round) or the wire's drain of an
	// unfinished batch. Only the owner writes or closes.
	writing bool
	closed  bool // the socket ended: nothing more is written
	kicked  bool
	// lines: the client asked for ?batch=lines (batch.go): each round's frames go out as one
	// websocket message, one JSON object per line, instead of one message each. Fixed at the
	// handshake (kept here, beside the flags under mu, only to share their word).
	lines  bool
	code   websocket.StatusCode
	reason string
	// resumedUpTo is the highest position sent by resume: live frames at or below it were
	// already sent from PostgreSQL and are dropped (no duplicate across the switch).
	resumedUpTo int64
	// refill: the socket must fill a gap from PostgreSQL (Hub.Refill) once its writes are free,
	// from its position or refillAfter, whichever is later. held: not before the instance's new
	// registration commits (Hub.Hold); parked: held, and nobody runs its writes meanwhile.
	refill      bool
	refillAfter int64
	held        bool
	parked      bool
	// position is the newest position the socket has: sent, or covered by a resume (or, before
	// any, the instance's floor at the handshake). A refill resumes from it. Read and written only
	// by the owner of the writes.
	position int64
	ping     *time.Timer
	expiry   *time.Timer
}

// maxBatchBytes bounds one round's frames (one write(2) when the kernel takes it all): enough to
// make a burst cheap, small enough that every socket's next round comes soon. A round's frames
// leave the queue's byte count; what the kernel did not take of them waits on the wire, so a
// socket holds at most SendQueueBytes queued plus one round.
const maxBatchBytes = 64 << 10

// accepts reports whether the socket forwards f (its ?types=).
func (c *conn) accepts(f *frame) bool { return slices.Contains(c.kinds, f.kind) }

// enqueue never blocks. A queue full of post frames means the client (or its network) does not
// keep up: it is closed with 1013 and reconnects with ?since= rather than slowing the consumer and
// every other socket on this instance. Dialog frames past their own bound are dropped instead,
// and the client told (shed.go).
func (c *conn) enqueue(f *frame) {
	if c.enqueueFrame(f) {
		c.h.writers.push(c)
	}
}

// enqueueFrame queues f and reports whether c must be handed to the writers (it was idle).
func (c *conn) enqueueFrame(f *frame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.kicked || c.last == f || c.seenInGap(f) {
		return false
	}
	c.last = f
	if f.kind == domain.KindDialog {
		if c.shedLocked(f) {
			return false
		}
	} else if posts := c.queue.postBytes(); posts > 0 && posts+len(f.body) > c.h.cfg.SendQueueBytes {
		// An empty queue takes any frame: a socket with nothing waiting is not behind.
		c.h.metrics.slow.Inc()
		return c.kickLocked(websocket.StatusTryAgainLater, "too slow: reconnect with since")
	}
	if m := c.shedFrameLocked(); m != nil {
		c.queue.push(m) // before any frame above what was dropped
	}
	c.queue.push(f)
	return c.claimLocked()
}

// seenInGap records a gap fill's frame, or says whether a live frame is the copy of one. Called
// with c.mu held.
func (c *conn) seenInGap(f *frame) bool {
	switch {
	case f.gap:
		if c.gapSeen == nil {
			c.gapSeen = make(map[int64]struct{})
		}
		c.gapSeen[f.position] = struct{}{}
		c.gapMax = max(c.gapMax, f.position)
	case c.gapSeen == nil:
	case f.position > c.gapMax:
		c.gapSeen = nil // live is past the gap: no copy of it can follow
	default:
		if _, ok := c.gapSeen[f.position]; ok {
			delete(c.gapSeen, f.position)
			return true
		}
	}
	return false
}

// kick asks for the socket to be closed with code (the first reason wins); queued frames are
// dropped.
func (c *conn) kick(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	schedule := c.kickLocked(code, reason)
	c.mu.Unlock()
	if schedule {
		c.h.writers.push(c)
	}
}

func (c *conn) kickLocked(code websocket.StatusCode, reason string) bool {
	if c.kicked || c.closed {
		return false
	}
	c.kicked, c.code, c.reason = true, code, reason
	return c.claimLocked()
}

// claimLocked takes the writes for the writers unless someone owns them already (the owner
// will see the new frame or the kick before it lets go).
func (c *conn) claimLocked() bool {
	if c.writing {
		return false
	}
	c.writing = true
	return true
}

// round writes one batch of queued frames, or closes the socket after a kick. The caller is a
// writer that took c from the run queue (c.writing is true); when the batch is on the wire, c
// goes back to the run queue if more waits, else it is released. A batch the kernel did not take
// whole finishes on the wire's drain, which continues from there (conn.drained). scratch is the
// writer's buffer for the batch, returned for the next round.
func (c *conn) round(scratch []*frame) []*frame {
	c.mu.Lock()
	if c.closed {
		c.writing = false
		c.queue.reset()
		c.mu.Unlock()
		return scratch
	}
	if c.kicked {
		// Keep writing = true: nobody writes after the close frame. The close handshake waits
		// for the peer, so it runs on its own goroutine, not on a shared writer.
		code, reason := c.code, c.reason
		c.queue.reset()
		c.mu.Unlock()
		go c.close(code, reason)
		return scratch
	}
	batch := c.takeLocked(scratch[:0])
	upTo := c.resumedUpTo
	c.mu.Unlock()

	c.wire.begin()
	err := c.writeFrames(batch, upTo)
	for _, f := range batch {
		c.position = max(c.position, f.position)
	}
	clear(batch)
	pending, endErr := c.wire.end(c)
	if err == nil {
		err = endErr
	}
	if err != nil {
		c.failed(err)
	} else if !pending {
		c.next()
	}
	return batch
}

// takeLocked moves the next batch from the queue to dst: every frame waiting, up to
// maxBatchBytes (at least one); when that empties the queue after dialog frames were dropped,
// the resync frame that says so ends the batch.
func (c *conn) takeLocked(dst []*frame) []*frame {
	dst = c.queue.take(dst, maxBatchBytes)
	if c.queue.empty() {
		if m := c.shedFrameLocked(); m != nil {
			dst = append(dst, m)
		}
	}
	return dst
}

// writeFrames writes each frame as its own websocket message, or, for a ?batch=lines socket, all
// of them as lines of as few messages as maxBatchBytes allows (the wire only holds the bytes).
func (c *conn) writeFrames(batch []*frame, upTo int64) error {
	var ls *lineMessage
	if c.lines {
		ls = getLineMessage()
		defer ls.put()
	}
	var now time.Time
	sent := 0
	for _, f := range batch {
		if f.position <= upTo {
			continue
		}
		// Background: no timer per frame. The write cannot block (the wire holds the batch); a
		// peer that does not drain its socket is bounded by the wire's timeout.
		var err error
		if ls != nil {
			err = ls.add(c.ws, f.body)
		} else {
			err = c.ws.Write(context.Background(), websocket.MessageText, f.body)
		}
		if err != nil {
			return err
		}
		sent++
		if f.live && !f.createdAt.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			c.h.metrics.latency.Observe(now.Sub(f.createdAt).Seconds())
		}
	}
	if ls != nil {
		if err := ls.flush(c.ws); err != nil {
			return err
		}
	}
	c.h.metrics.framesSent.Add(float64(sent))
	return nil
}

// drained is called by the wire when a batch it could not write at once is written.
func (c *conn) drained(err error) {
	if err != nil {
		c.failed(err)
		return
	}
	c.next()
}

// next hands c to a refill if one is asked, back to the run queue if frames (or a kick) wait, else
// releases its writes.
func (c *conn) next() {
	c.mu.Lock()
	if c.refill && !c.kicked && !c.closed {
		if c.held {
			c.parked = true // Refill hands it on
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.h.refills.push(c)
		return
	}
	if !c.queue.empty() || c.kicked || c.closed {
		c.mu.Unlock()
		c.h.writers.push(c)
		return
	}
	c.writing = false
	c.queue.reset()
	c.mu.Unlock()
}

// failed ends a socket whose write failed (the peer is gone or did not drain it in time).
func (c *conn) failed(err error) {
	c.h.log.Debug("write frame", slog.String("user_id", c.user), slog.Any("err", err))
	c.ws.CloseNow()
	c.mu.Lock()
	c.closed, c.writing = true, false
	c.queue.reset()
	c.mu.Unlock()
}

// release ends the handler's ownership of the writes (after the upgrade and any resume): the
// frames that queued meanwhile go to the writers.
func (c *conn) release() { c.next() }

// writePage sends frames (each its own message, or lines of a few for ?batch=lines) as one batch
// on the wire, and waits until they are written (the handler's goroutine, during resume).
func (c *conn) writePage(frames []*frame) error {
	c.wire.begin()
	if err := c.writeFrames(frames, math.MinInt64); err != nil { // skip nothing
		_, _ = c.wire.end(nil)
		return err
	}
	return c.wire.endAndWait()
}

// close runs the close handshake (coder/websocket waits up to 5 s for the peer's close frame).
func (c *conn) close(code websocket.StatusCode, reason string) {
	if code == websocket.StatusTryAgainLater {
		c.h.log.Info("closing slow websocket client", slog.String("user_id", c.user))
	}
	if err := c.closeBounded(code, reason); err != nil && !errors.Is(err, context.Canceled) {
		c.h.log.Debug("close websocket", slog.String("user_id", c.user), slog.Any("err", err))
	}
}

// The close handshake's bounds: coder/websocket waits up to 5 s for the peer's close frame, but
// reads everything the peer sends meanwhile without a deadline or a byte limit (see input).
const (
	closeHandshakeTimeout = 2 * time.Second
	closeReadBytes        = 64 << 10
)

// closeBounded runs the close handshake, cut after closeHandshakeTimeout or closeReadBytes read,
// whatever the peer does: a peer that streams a frame announced as 2^62 bytes after our close
// must not hold the socket, its reader and a core.
func (c *conn) closeBounded(code websocket.StatusCode, reason string) error {
	c.in.closing()
	_ = c.wire.SetReadDeadline(time.Now().Add(closeHandshakeTimeout))
	return c.ws.Close(code, reason)
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

// keepalive pings and re-arms; a peer that does not answer within PingTimeout is dropped, unless
// its TCP keeps acknowledging frames meanwhile. Then its pong most likely waits behind what the
// kernel still holds for it (a slow but steady reader of a backlog, which lost its socket to a
// pong it could not yet send), so the same ping is waited for longer, one PingTimeout at a time
// while more than ackProgress bytes are acknowledged in each, at most maxPongWait of them. An
// acknowledgement says the bytes reached the peer's kernel, not that its application read them:
// a peer that stopped reading behind a large receive window is cut at maxPongWait, or sooner by
// the wire's write timeout once its window is full.
func (c *conn) keepalive() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	acked, known := c.wire.acked()
	giveUp := time.Now().Add(maxPongWait * c.h.cfg.PingTimeout)
	var wait *time.Timer
	extend := func() { // on the timer's goroutine, one call at a time
		if ctx.Err() != nil {
			return // the ping is over
		}
		now, _ := c.wire.acked()
		if known && now > acked+ackProgress && time.Now().Before(giveUp) {
			acked = now
			wait.Reset(c.h.cfg.PingTimeout)
			return
		}
		cancel()
	}
	wait = time.AfterFunc(time.Hour, extend)
	wait.Reset(c.h.cfg.PingTimeout)
	err := c.ws.Ping(ctx)
	wait.Stop()
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

// ackProgress is the acknowledged bytes per PingTimeout that show a peer still taking frames
// (more than the ping itself: at most 6 bytes of header and 125 of payload); maxPongWait bounds
// the wait for one pong, in PingTimeouts.
const (
	ackProgress = 1 << 10
	maxPongWait = 12
)

// readUntilClosed is the socket's reader, as websocket.Conn.CloseRead but with no context of its
// own (a context, its cancel and an AfterFunc on it cost ~1 KiB per idle socket): coder/websocket
// handles control frames inside Reader, which returns only on a data message (refused with 1008)
// or the end of the connection. Then the socket leaves the hub.
func (c *conn) readUntilClosed() {
	if _, _, err := c.ws.Reader(context.Background()); err == nil {
		c.closeBounded(websocket.StatusPolicyViolation, "unexpected data message")
	}
	c.ws.CloseNow()
	c.ended()
	c.h.metrics.connections.Dec()
	// Done before leaving presence: a shutdown waits for sockets, not for the database (the instance's
	// exclusive queue goes with its connection anyway).
	c.h.active.Done()
	c.h.unregister(c)
}

// ending reports whether the socket's reader has seen its end.
func (c *conn) ending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// ended marks the socket closed (its reader saw the end) and stops the timers.
func (c *conn) ended() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if !c.writing {
		c.queue.reset()
	}
	if c.ping != nil {
		c.ping.Stop()
	}
	if c.expiry != nil {
		c.expiry.Stop()
	}
}
