package http

import (
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// DefaultExpensiveReadsPerUser is how many expensive reads one user (or, for search, one client
// address) has running at once. The page asks for at most three at a time (a page of the feed or
// of your own posts, which it reads one after the other, whom you follow, a dialog); four leaves
// a second tab room while a flood from one account holds at most four of the pool's connections.
const DefaultExpensiveReadsPerUser = 4

// expensiveRetryAfter is the Retry-After of a read refused for the reads its user already has
// running: each of them ends within the read timeout.
const expensiveRetryAfter = time.Second

// expensiveReads bounds, per user, the reads whose cost grows with what the user asks for or
// has built, not with one row: the feed (the follows it merges, a page of up to 1,000 posts and
// 1 MiB of text), a user's posts (a page of up to 1,000 posts and 1 MiB of text, as a dialog
// page), whom one follows (sorted over every follow), a dialog page (up to 1 MiB of text) and
// search (every user whose name starts with a one-letter prefix is read to sort 100 of them).
// Each holds a pooled connection while it runs: without a bound one account asking 32 deep feed
// pages at once held the pool, and everyone else's /user/get and /post/create waited seconds for a
// connection. A read past the bound is refused at once with 429, before it takes a connection.
// Search needs no account, so it is counted by client address.
type expensiveReads struct {
	mu      sync.Mutex
	running map[string]int // only keys with reads running: at most one entry per request in flight
	max     int
}

func newExpensiveReads(max int) *expensiveReads {
	return &expensiveReads{running: map[string]int{}, max: max}
}

func (e *expensiveReads) acquire(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running[key] >= e.max {
		return false
	}
	e.running[key]++
	return true
}

func (e *expensiveReads) release(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running[key]--; e.running[key] <= 0 {
		delete(e.running, key)
	}
}

// expensive is the route middleware of the expensive reads (after authenticate, where there is
// one): the caller's user, else its address, holds a slot while the handler runs.
func (s *Server) expensive(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := "address " + addressKey(c.RealIP())
		if user := currentUser(c); user != "" {
			key = "user " + user
		}
		if !s.reads.acquire(key) {
			return throttled(expensiveRetryAfter, "reads at once")
		}
		defer s.reads.release(key)
		return next(c)
	}
}
