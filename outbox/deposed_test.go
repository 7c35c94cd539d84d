package outbox_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/outbox"
)

// A leader whose database session ends in the middle of a big fan-out must stop publishing that
// row's pages at once: its successor claims the row again with a new position and relays it
// whole, and the old leader going on would send the same frames again at the old position, for
// as long as its pages last. Here the big row's bulk pages are held in a paused connection when
// the leader's session is terminated; once the relay has noticed, the connection is resumed.
// What was already written may still arrive at the old position, but no page read after that.
func TestDeposedLeaderStopsPublishingTheBigRowsPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(41001)
	big, followers := us[0], us[1:]
	e.follow(big, followers) // a first page of 1,000, then eight bulk reads of 5,000
	bound := onePerMessage(followers)
	warm := e.users(1)[0]
	e.follow(warm, followers[:1500])
	c := e.consumer(bound...)

	proxy := amqptest.NewProxy(t, amqptest.Addr())
	var resume sync.Once
	t.Cleanup(func() { resume.Do(proxy.Resume) })
	r, err := outbox.NewRelay(outbox.Config{Pool: e.db.Pool, Publisher: e.publisher(), BulkPublisher: e.publisher(proxy.URL()),
		Exchange: e.exchange, InlineFollowers: 1000, Logger: quietLogger(), PollInterval: 200 * time.Millisecond,
		LeaderRetryInterval: 100 * time.Millisecond, ErrorBackoffMin: 20 * time.Millisecond, ErrorBackoffMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	})

	// Warm up: the bulk publisher connects and declares the exchange before the pause.
	w := e.post(warm, "warm-up")
	waitFor(t, 20*time.Second, "the warm-up post's second page", func() bool { return named(c, w.ID, followers[1000]) })

	proxy.Pause()
	p := e.post(big, "big")
	waitFor(t, 20*time.Second, "the big post's first page", func() bool { return named(c, p.ID, followers[0]) })
	oldPos := positionOf(c, p.ID)

	var pid int
	if err := e.db.Pool.QueryRow(t.Context(), `SELECT pid FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&pid); err != nil {
		t.Fatalf("find the leader's session: %v", err)
	}
	e.db.Exec(t, `SELECT pg_terminate_backend($1)`, pid)
	waitFor(t, 20*time.Second, "the relay to notice it lost its session", func() bool { return !r.IsLeader() })
	resume.Do(proxy.Resume)

	waitFor(t, 60*time.Second, "the big post relayed again to every follower at a new position", func() bool {
		n := 0
		for _, d := range c.deliveries() {
			if d.frame.PostID == p.ID && d.frame.Position > oldPos {
				n++
			}
		}
		return n >= len(bound)
	})
	atOld := 0
	for _, d := range c.deliveries() {
		if d.frame.PostID == p.ID && d.frame.Position == oldPos {
			atOld++
		}
	}
	// The first page plus at most the bulk window (4 groups of 5 messages) written before the
	// pause took effect; the other 20 pages were never to be read by the deposed leader.
	if atOld >= len(bound) {
		t.Fatalf("the deposed leader published all %d pages at its old position %d", atOld, oldPos)
	}
	t.Logf("%d of %d pages at the old position, all again at a new one", atOld, len(bound))
}

// positionOf is the position of the first delivery of post postID.
func positionOf(c *consumer, postID string) int64 {
	for _, d := range c.deliveries() {
		if d.frame.PostID == postID {
			return d.frame.Position
		}
	}
	return 0
}
