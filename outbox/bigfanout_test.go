package outbox_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/outbox"
)

// A big fan-out must not hold up other authors' posts, yet no follower may get a later post
// before an earlier one that names them. The big post's pages after the first travel on the bulk
// publisher, here through a proxy that the test pauses: while the big post is stuck half-way,
// another author's post must reach the follower whom the big post's remaining pages do not name
// (g) at once, and the follower they do name (f) only after the big post.
func TestBigFanOutHoldsUpOnlyTheFollowersItStillNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(1503)
	big, small, g, followers := us[0], us[1], us[2], us[3:]
	e.follow(big, followers)   // 1,500: a first page of 1,000 and a second of 500
	f := slices.Max(followers) // pages go in id order: f is on the second page
	e.follow(small, []string{f, g})
	c := e.consumer(f, g)

	proxy := amqptest.NewProxy(t, amqptest.Addr())
	e.relay(outbox.Config{BulkPublisher: e.publisher(proxy.URL()), InlineFollowers: 1000})

	// Warm up: the bulk publisher connects and declares the exchange before the pause.
	warm := e.post(big, "warm-up")
	waitFor(t, 20*time.Second, "the warm-up post's second page", func() bool { return named(c, warm.ID, f) })

	var resume sync.Once
	proxy.Pause()
	t.Cleanup(func() { resume.Do(proxy.Resume) })
	held := e.post(big, "stuck half-way")
	later := e.post(small, "after it")

	waitFor(t, 20*time.Second, "the later post for the follower the big post no longer names", func() bool { return named(c, later.ID, g) })
	if named(c, later.ID, f) {
		t.Fatalf("the later post reached %s, whom the big post's held page still names, before the big post", f)
	}
	if named(c, held.ID, f) {
		t.Fatal("the big post's second page went through a paused connection")
	}

	resume.Do(proxy.Resume)
	waitFor(t, 20*time.Second, "both posts for the follower on the big post's second page", func() bool {
		return named(c, held.ID, f) && named(c, later.ID, f)
	})
	var order []string
	var last int64
	for _, d := range c.deliveries() {
		if !slices.Contains(d.recipients(), f) {
			continue
		}
		order = append(order, d.frame.PostText)
		if d.frame.Position <= last {
			t.Errorf("%s got position %d after %d", f, d.frame.Position, last)
		}
		last = d.frame.Position
	}
	if want := []string{"warm-up", "stuck half-way", "after it"}; !slices.Equal(order, want) {
		t.Errorf("%s got %q, want %q", f, order, want)
	}
}

// named reports whether a delivery of post postID named user.
func named(c *consumer, postID, user string) bool {
	for _, d := range c.deliveries() {
		if d.frame.PostID == postID && slices.Contains(d.recipients(), user) {
			return true
		}
	}
	return false
}

// Many big fan-outs among small posts, more per batch than one batch carries: every follower
// gets every post, each follower's frames in position order (a post may come twice: a row
// released for per-author order is published again).
func TestMixedBigAndSmallFanOutsLoseNothingAndKeepOrder(t *testing.T) {
	t.Parallel()
	// 1,000: the big author's posts continue on the bulk publisher; the default (10,000): all
	// go out inline, a page read per page.
	for _, inline := range []int{1000, 0} {
		t.Run(fmt.Sprintf("inline=%d", inline), func(t *testing.T) {
			t.Parallel()
			testMixedFanOuts(t, inline)
		})
	}
}

func testMixedFanOuts(t *testing.T, inline int) {
	e := newEnv(t)
	us := e.users(1203)
	big, smalls, followers := us[0], us[1:3], us[3:]
	e.follow(big, followers) // 1,200: a first page and a continuation
	for i, a := range smalls {
		e.follow(a, followers[i*500:i*500+700]) // overlapping the big author's first and later pages
	}
	c := e.consumer(followers...)
	e.relay(outbox.Config{BulkPublisher: e.publisher(), BatchSize: 64, InlineFollowers: inline})

	const bigPosts, smallPosts = 40, 40
	want := map[string]int{} // post id → recipients
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, a := range append([]string{big}, smalls...) {
		n, fan := smallPosts, 700
		if a == big {
			n, fan = bigPosts, 1200
		}
		wg.Go(func() {
			for range n {
				p := e.post(a, "p")
				mu.Lock()
				want[p.ID] = fan
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	total := 0
	for _, n := range want {
		total += n
	}
	got := func() map[[2]string]bool {
		seen := map[[2]string]bool{}
		for _, d := range c.deliveries() {
			for _, u := range d.recipients() {
				seen[[2]string{d.frame.PostID, u}] = true
			}
		}
		return seen
	}
	waitFor(t, 60*time.Second, "every post to every follower", func() bool { return len(got()) >= total })
	last := map[string]int64{}
	for _, d := range c.deliveries() {
		for _, u := range d.recipients() {
			if d.frame.Position < last[u] {
				t.Fatalf("follower %s got position %d after %d", u, d.frame.Position, last[u])
			}
			last[u] = d.frame.Position
		}
	}
	if n := len(got()); n != total {
		t.Errorf("%d (post, follower) pairs delivered, want %d", n, total)
	}
}
