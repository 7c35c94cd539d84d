package outbox_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/outbox"
)

// A big row whose followers after the first page are an exact multiple of the bulk read (5,000)
// ends with an empty read: its last "page" has no message. That page must still close the row
// (release it in order and let the batch be marked), or the row stays "active" for ever and every
// later row that names one of its followers is deferred onto the bulk publisher behind it. Seen
// from outside: once the big posts are through, the bulk connection is paused, and another
// author's post to one of the big row's followers must still arrive (inline, on the main
// publisher).
func TestBigFanOutEndingOnAFullBulkReadIsMarkedAndReleasesLaterRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(6002)
	big, small, followers := us[0], us[1], us[2:]
	e.follow(big, followers) // 6,000 = a first page of 1,000 + one full bulk read of 5,000
	last := slices.Max(followers)
	e.follow(small, []string{last}) // named by the big row's last page
	c := e.consumer(followers...)
	proxy := amqptest.NewProxy(t, amqptest.Addr())
	e.relay(outbox.Config{BulkPublisher: e.publisher(proxy.URL()), InlineFollowers: 1000})

	p1 := e.post(big, "first")
	p2 := e.post(small, "after it")
	p3 := e.post(big, "second")
	waitFor(t, 60*time.Second, "both big posts to every follower and the small one to its follower", func() bool {
		return named(c, p2.ID, last) && countNamed(c, p3.ID) == len(followers)
	})
	if n := countNamed(c, p1.ID); n != len(followers) {
		t.Fatalf("the first big post reached %d followers, want %d", n, len(followers))
	}
	var order []string
	for _, d := range c.deliveries() {
		if slices.Contains(d.recipients(), last) {
			order = append(order, d.frame.PostText)
		}
	}
	if want := []string{"first", "after it", "second"}; !slices.Equal(order, want) {
		t.Errorf("%s got %q, want %q", last, order, want)
	}
	waitFor(t, 20*time.Second, "every row marked relayed", func() bool {
		var pending int
		if err := e.db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM outbox WHERE status <> 'relayed'`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		return pending == 0
	})

	var resume sync.Once
	proxy.Pause()
	t.Cleanup(func() { resume.Do(proxy.Resume) })
	p4 := e.post(small, "with the bulk connection paused")
	waitFor(t, 20*time.Second, "a later small post while the bulk connection is paused", func() bool { return named(c, p4.ID, last) })
}

// countNamed is how many distinct users the deliveries of post postID named.
func countNamed(c *consumer, postID string) int {
	seen := map[string]bool{}
	for _, d := range c.deliveries() {
		if d.frame.PostID == postID {
			for _, u := range d.recipients() {
				seen[u] = true
			}
		}
	}
	return len(seen)
}
