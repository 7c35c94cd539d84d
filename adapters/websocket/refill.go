package websocket

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Refill fills every open socket's gap from PostgreSQL, by resume's rule, from the last position
// the socket has: frames routed to this instance while it had no queue (a broker reconnect or a
// cluster failover) or no live registration (routing skipped it) were never delivered, and are
// in the outbox. No socket is closed for it, unless it missed more than a resume sends (resync).
// Live frames that arrive meanwhile wait in the socket's queue and go out after the refill,
// those it already sent dropped by position.
func (h *Hub) Refill() {
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
		if c.askRefill() {
			n++
		}
	}
	if n > 0 {
		h.log.Info("filling open sockets' gaps from the outbox", slog.Int("sockets", n))
	}
}

// askRefill marks c for a refill; if nobody owns its writes it is queued at once, else its owner
// queues it when it lets go (next).
func (c *conn) askRefill() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.kicked {
		return false
	}
	c.refill = true
	if c.claimLocked() {
		c.h.refills.push(c)
	}
	return true
}

// runRefill fills c's gap; c's writes are ours until release.
func (c *conn) runRefill() {
	c.mu.Lock()
	c.refill = false
	c.mu.Unlock()
	c.h.metrics.refills.Inc()
	if !c.ending() {
		if err := c.resume(c.position); err != nil && !c.ending() {
			c.h.log.Warn("refill failed", slog.String("user_id", c.user), slog.Any("err", err))
			c.kick(websocket.StatusInternalError, "feed interrupted: reconnect with since")
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

// floor is the position a socket opened without ?since= fills a later gap from: the newest frame
// this instance has delivered live, or, before any, the newest position in the database (read
// once). A socket may so get a few frames from just before it connected; never lose one after.
func (h *Hub) floor() int64 {
	if p := h.live.Load(); p > 0 || h.cfg.Missed == nil {
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	newest, err := h.cfg.Missed.Newest(ctx)
	if err != nil {
		return 0
	}
	for {
		seen := h.live.Load()
		if newest <= seen || h.live.CompareAndSwap(seen, newest) {
			return max(seen, newest)
		}
	}
}
