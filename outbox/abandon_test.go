package outbox_test

import (
	"sync"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/outbox"
)

// When reading a big row's next page of followers fails, the emitter abandons the row: it is
// released unrelayed (never marked relayed with pages missing) and relayed whole again, and it
// stops holding back later rows once what it already sent is confirmed (else every later row
// naming one of its followers would be deferred onto the bulk publisher for ever). The read is made to fail
// by terminating the session that runs it while it waits for a lock the test holds on
// friendships.
func TestFollowerReadErrorAbandonsTheBigRowWhichIsRelayedAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(36002)
	big, small, followers := us[0], us[1], us[2:]
	e.follow(big, followers) // a first page of 1,000, then seven bulk reads of 5,000
	bound := onePerMessage(followers)
	lastBound := bound[len(bound)-1]
	e.follow(small, []string{lastBound})
	c := e.consumer(bound...)

	proxy := amqptest.NewProxy(t, amqptest.Addr())
	var resume sync.Once
	t.Cleanup(func() { resume.Do(proxy.Resume) })
	e.relay(outbox.Config{BulkPublisher: e.publisher(proxy.URL()), InlineFollowers: 1000})
	warm := e.post(big, "warm-up") // connects the bulk publisher before the pause
	waitFor(t, 60*time.Second, "the warm-up post to every page", func() bool { return countNamedOf(c, warm.ID, bound) == len(bound) })

	proxy.Pause()
	p := e.post(big, "big")
	waitFor(t, 20*time.Second, "the big post's first page", func() bool { return named(c, p.ID, followers[0]) })
	firstPos := positionOf(c, p.ID)

	// Hold friendships; with the bulk connection resumed the emitter reads on and blocks.
	tx, err := e.db.Pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	if _, err := tx.Exec(t.Context(), `LOCK TABLE friendships IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	resume.Do(proxy.Resume)
	var reader int
	waitFor(t, 20*time.Second, "a follower page read waiting for the lock", func() bool {
		err := e.db.Pool.QueryRow(t.Context(), `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE '%friendships%' LIMIT 1`).Scan(&reader)
		return err == nil
	})
	e.db.Exec(t, `SELECT pg_terminate_backend($1)`, reader)
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}

	later := e.post(small, "after it")
	waitFor(t, 60*time.Second, "the big post relayed whole at a later position, and the later post", func() bool {
		n := 0
		for _, d := range c.deliveries() {
			if d.frame.PostID == p.ID && d.frame.Position > firstPos {
				n++
			}
		}
		return n >= len(bound) && named(c, later.ID, lastBound)
	})
	var pending int
	waitFor(t, 20*time.Second, "every row marked relayed", func() bool {
		if err := e.db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM outbox WHERE status <> 'relayed'`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		return pending == 0
	})
	var pos int64
	if err := e.db.Pool.QueryRow(t.Context(), `SELECT o.position FROM outbox o JOIN events ev ON ev.id = o.event_id
		WHERE ev.aggregate_id = $1`, p.ID).Scan(&pos); err != nil {
		t.Fatal(err)
	}
	if pos == firstPos {
		t.Fatalf("the abandoned row was marked relayed at its first position %d, with pages missing", pos)
	}

	// The abandoned attempt holds nothing back any more: with the bulk connection paused, a
	// later post to one of the big author's followers still goes out (inline).
	proxy.Pause()
	resume = sync.Once{}
	last := e.post(small, "with the bulk connection paused")
	waitFor(t, 20*time.Second, "a later small post while the bulk connection is paused", func() bool { return named(c, last.ID, lastBound) })
}

// countNamedOf is how many of users the deliveries of post postID named.
func countNamedOf(c *consumer, postID string, users []string) int {
	n := 0
	for _, u := range users {
		if named(c, postID, u) {
			n++
		}
	}
	return n
}
