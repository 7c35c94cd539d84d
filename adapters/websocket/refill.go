package websocket

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/socialnet/social/domain"
)

// gapRows bounds the rows one gap fill reads for the whole instance; a longer outage fills socket
// by socket (each resume bounded, with a resync past its bound).
const gapRows = 200

// Reconnected is the subscriber's word that the instance's queue exists again on a (new) broker
// connection, before its first delivery: frames routed here while there was no queue were dropped
// by the broker, and are in the outbox. The gap is read once for the whole instance — every frame
// above the last one received live that goes to a user connected here — and delivered like a
// live message, before any later one; each socket drops the live copy of a frame the gap gave it
// (routed around the reconnect). No socket is closed. Before anything was received, or for a gap longer than gapRows,
// each socket fills its own gap instead (Refill).
func (h *Hub) Reconnected() {
	after := h.live.Load()
	if h.cfg.Missed == nil || after == 0 {
		h.Refill()
		return
	}
	users := h.userIDs()
	if len(users) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg, last, more, err := h.cfg.Missed.Gap(ctx, users, after, gapRows)
	if err != nil || more {
		if err != nil {
			h.log.Warn("reading the gap for the instance failed; filling socket by socket", slog.Any("err", err))
		}
		h.refill(after)
		return
	}
	frames := 0
	err = domain.EachDelivery(msg, func(body []byte, to domain.Recipients) {
		f, err := parseFrame(body)
		if err != nil {
			return
		}
		frames++
		f.gap = true
		h.deliver(f, to)
	})
	if err != nil {
		// Frames after the malformed one were not delivered: each socket fills its own gap.
		h.log.Warn("a malformed gap; filling socket by socket", slog.Any("err", err))
		h.refill(after)
		return
	}
	h.reached(last)
	h.metrics.gaps.Inc()
	h.log.Info("filled the instance's gap from the outbox", slog.Int64("after", after), slog.Int64("up_to", last), slog.Int("frames", frames))
}

// userIDs lists the users with a socket here.
func (h *Hub) userIDs() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	ids := make([]string, 0, len(h.users))
	for u := range h.users {
		ids = append(ids, u)
	}
	return ids
}

// Hold stops every open socket's writes before the instance registers again after its
// registration lapsed: live frames routed once the new registration commits wait in the queues,
// so each socket's position is still the last frame it had when Refill reads its gap from there.
func (h *Hub) Hold() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, set := range h.users {
		for _, c := range set {
			c.hold()
		}
	}
}

// hold marks c for a refill and parks its writes (or lets its owner park them when it lets go).
func (c *conn) hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.kicked {
		return
	}
	c.refill, c.held = true, true
	if c.claimLocked() {
		c.parked = true
	}
}

// Refill fills every open socket's gap from PostgreSQL, by resume's rule, from the last position
// the socket has: frames routed to this instance while it had no live registration (routing
// skipped it) were never delivered, and are in the outbox. Call Hold before the registration
// that ends the gap, and Refill after it commits. No socket is closed for it, unless it
// missed more than a resume sends (resync). Live frames that arrive meanwhile wait in the
// socket's queue and go out after the refill, those it already sent dropped by position.
func (h *Hub) Refill() { h.refill(0) }

// refill fills each socket's gap from its own position, or from after when that is later (every
// frame up to after that was routed here arrived).
func (h *Hub) refill(after int64) {
	if h.cfg.Missed == nil {
		return // no outbox to read: nothing to fill from
	}
	h.mu.RLock()
	conns := make([]*conn, 0, len(h.users))
	for _, set := range h.users {
		conns = append(conns, set...)
	}
	h.mu.RUnlock()
	n := 0
	for _, c := range conns {
		if c.askRefill(after) {
			n++
		}
	}
	if n > 0 {
		h.log.Info("filling open sockets' gaps from the outbox", slog.Int("sockets", n))
	}
}

// askRefill marks c for a refill from after (or its own position, if later) and queues it if
// nobody runs its writes (it was parked, or idle); else its owner queues it when it lets go
// (next). A parked socket that was kicked or closed meanwhile goes to the writers instead, which
// carry out its close.
func (c *conn) askRefill(after int64) bool {
	c.mu.Lock()
	parked := c.parked
	c.parked, c.held = false, false
	if c.closed || c.kicked {
		c.mu.Unlock()
		if parked {
			c.h.writers.push(c)
		}
		return false
	}
	c.refill = true
	c.refillAfter = max(c.refillAfter, after)
	queue := parked || c.claimLocked()
	c.mu.Unlock()
	if queue {
		c.h.refills.push(c)
	}
	return true
}

// runRefill fills c's gap; c's writes are ours until release.
func (c *conn) runRefill() {
	c.mu.Lock()
	c.refill = false
	from := max(c.position, c.refillAfter)
	c.mu.Unlock()
	c.h.metrics.refills.Inc()
	if !c.ending() {
		if endTurn, err := c.h.resumeTurn(context.Background(), c.user); err != nil {
			c.kick(websocket.StatusTryAgainLater, "feed interrupted: reconnect with since")
		} else {
			if err := c.resume(from, true); err != nil && !c.ending() {
				c.h.log.Warn("refill failed", slog.String("user_id", c.user), slog.Any("err", err))
				c.kick(websocket.StatusInternalError, "feed interrupted: reconnect with since")
			}
			endTurn()
		}
	}
	c.release()
}

// refillQueue holds the sockets waiting for a refill and runs at most Config.Refills at once, on
// goroutines that exist only while there is work.
type refillQueue struct {
	mu      sync.Mutex
	conns   []*conn
	running int
}

func (q *refillQueue) push(c *conn) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.conns = append(q.conns, c)
	if q.running < c.h.cfg.Refills {
		q.running++
		go q.work()
	}
}

func (q *refillQueue) work() {
	for {
		q.mu.Lock()
		if len(q.conns) == 0 {
			q.running--
			q.conns = nil
			q.mu.Unlock()
			return
		}
		c := q.conns[0]
		q.conns = q.conns[1:]
		q.mu.Unlock()
		c.runRefill()
	}
}

// floor is the position a socket opened without ?since= fills a later gap from: the newest
// position in the database, read at most once a second (floorTTL) for all handshakes. A socket
// may so get a few frames from just before it connected, never lose one after; and a refill of
// a socket on a quiet instance does not reach back to frames from long before it connected.
func (h *Hub) floor() int64 {
	if h.cfg.Missed == nil {
		return 0
	}
	if at := h.floorRead.Load(); at != 0 && time.Since(time.Unix(0, at)) < floorTTL {
		return h.floorAt.Load()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	newest, err := h.cfg.Missed.Newest(ctx)
	if err != nil {
		return max(h.floorAt.Load(), h.live.Load())
	}
	h.floorAt.Store(newest)
	h.floorRead.Store(time.Now().UnixNano())
	return newest
}

// floorTTL is how long one read of the newest position serves as the floor of new sockets.
const floorTTL = time.Second
