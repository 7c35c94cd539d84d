package outbox_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socialnet/social/outbox"
)

// claims reads social_outbox_claims_total by its found label.
func claims(t *testing.T, reg *prometheus.Registry) (rows, none float64) {
	t.Helper()
	return metricValue(t, reg, "social_outbox_claims_total", "found", "rows"),
		metricValue(t, reg, "social_outbox_claims_total", "found", "none")
}

// At a trickle, each post relayed before the next, the leader claims when notified and not again
// after every claim and every mark: those claims found nothing (40 % of all claims at a steady
// 100 posts/s before).
func TestLeaderClaimsWhenNotifiedNotAfterEveryBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(2)
	author, follower := us[0], us[1]
	e.follow(author, []string{follower})
	c := e.connected(follower)
	reg := prometheus.NewRegistry()
	// No poll inside the test: every claim is the start's, a notification's or a batch's.
	e.relay(outbox.Config{Registerer: reg, PollInterval: time.Hour})

	const posts = 20
	for i := range posts {
		e.post(author, fmt.Sprintf("%d", i))
		wait.For(t, 10*time.Second, fmt.Sprintf("post %d delivered", i), func() bool { return len(c.deliveries()) == i+1 })
		// Marked too: the next post must not find its predecessor's batch in flight.
		wait.For(t, 10*time.Second, fmt.Sprintf("post %d marked", i), func() bool {
			return metricValue(t, reg, "social_outbox_relayed_rows_total") == float64(i+1)
		})
	}
	rows, none := claims(t, reg)
	if rows < 1 || rows > posts {
		t.Errorf("%v claims found rows, want 1..%d", rows, posts)
	}
	// The start's claim, and now and then one for a notification drained late.
	if none > posts/4 {
		t.Errorf("%v claims found nothing for %d posts (found rows: %v): the leader claims without a reason", none, posts, rows)
	}
	// The leadership read presence whole once, before its first claim, and not per post.
	if n := metricValue(t, reg, "social_outbox_presence_load_seconds"); n != 1 {
		t.Errorf("presence read whole %v times in %d posts, want once", n, posts)
	}
	// Every batch with rows is timed once in each phase; empty claims are not.
	for _, phase := range []string{"claim", "route", "publish", "mark"} {
		if n := metricValue(t, reg, "social_outbox_batch_phase_seconds", "phase", phase); n != rows {
			t.Errorf("phase %s timed %v times, want %v (the claims that found rows)", phase, n, rows)
		}
	}
}

// A backlog bigger than a batch is claimed batch after batch with no notification and no poll:
// a full claim says more rows may wait.
func TestLeaderDrainsABacklogWithoutNotifications(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(2)
	author, follower := us[0], us[1]
	e.follow(author, []string{follower})
	c := e.connected(follower)
	const posts = 23
	for i := range posts {
		e.post(author, fmt.Sprintf("%d", i)) // before the relay: their notifications reach no one
	}
	reg := prometheus.NewRegistry()
	e.relay(outbox.Config{Registerer: reg, BatchSize: 4, PollInterval: time.Hour})
	wait.For(t, 20*time.Second, "the backlog relayed", func() bool { return len(c.deliveries()) >= posts })
	if got := len(c.deliveries()); got != posts {
		t.Fatalf("%d deliveries, want %d", got, posts)
	}
	if rows, _ := claims(t, reg); rows < posts/4 {
		t.Errorf("%v claims with rows for %d rows in batches of 4", rows, posts)
	}
}
