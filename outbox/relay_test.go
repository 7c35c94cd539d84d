package outbox_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

func TestRelayRoutesEachPostToFollowersOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(5)
	author, f1, f2, f3, stranger := us[0], us[1], us[2], us[3], us[4]
	e.follow(author, []string{f1, f2, f3})
	// Each user has their own queue, like users connected to different realtime instances.
	queues := map[string]*consumer{}
	for _, u := range []string{f1, f2, f3, stranger} {
		queues[u] = e.consumer(u)
	}
	e.relay(outbox.Config{})
	p := e.post(author, "hello followers")

	for _, f := range []string{f1, f2, f3} {
		waitFor(t, 10*time.Second, "delivery to "+f, func() bool { return len(queues[f].deliveries()) > 0 })
	}
	var eventID string
	if err := e.db.Pool.QueryRow(t.Context(), `SELECT event_id::text FROM outbox`).Scan(&eventID); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{f1, f2, f3} {
		ds := queues[f].deliveries()
		if len(ds) != 1 {
			t.Fatalf("follower %s got %d deliveries, want 1", f, len(ds))
		}
		d := ds[0]
		if got := d.recipients(); !slices.Contains(got, f) || len(got) != 3 {
			t.Errorf("recipients %v: want the 3 followers incl. %s", got, f)
		}
		if d.msgID != eventID {
			t.Errorf("MessageId %q, want the event id %q", d.msgID, eventID)
		}
		fr := d.frame
		if fr.PostID != p.ID || fr.PostText != "hello followers" || fr.AuthorUserID != author || fr.Type != domain.EventPostCreated || fr.Position < 1 || fr.CreatedAt.IsZero() {
			t.Errorf("frame %+v does not describe post %s", fr, p.ID)
		}
		var raw map[string]any
		_ = json.Unmarshal(d.body, &raw)
		for _, k := range []string{"postId", "postText", "author_user_id", "type", "position", "created_at"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("frame lacks %q: %s", k, d.body)
			}
		}
	}
	for _, c := range queues {
		if len(c.errs) > 0 {
			t.Errorf("consumer errors: %v", c.errs)
		}
	}
	waitFor(t, 5*time.Second, "row relayed", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == 1 })
	// Give a stray message to the stranger every chance to arrive before declaring none did:
	// publish a second post and wait until its frames reached the followers (same channel, FIFO).
	e.post(author, "second")
	waitFor(t, 10*time.Second, "second delivery", func() bool { return len(queues[f1].deliveries()) == 2 })
	if n := len(queues[stranger].deliveries()); n != 0 {
		t.Errorf("a non-follower got %d deliveries", n)
	}
}

func TestRelaySplitsBigFanOutIntoChunksOf1000WithCCArray(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(2501)
	author, followers := us[0], us[1:]
	e.follow(author, followers)
	all := e.consumer(followers...) // one instance with every follower connected
	e.relay(outbox.Config{})
	e.post(author, "to many")

	// The first page leads with a short message (leadFollowers, 100), then chunks of 1,000.
	waitFor(t, 20*time.Second, "4 chunks", func() bool { return len(all.deliveries()) >= 4 })
	ds := all.deliveries()
	var sizes []int
	for _, d := range ds {
		sizes = append(sizes, len(d.recipients()))
	}
	if fmt.Sprint(sizes) != "[100 900 1000 500]" {
		t.Fatalf("messages name %v followers, want [100 900 1000 500]", sizes)
	}
	seen := recipientCount(ds)
	for _, f := range followers {
		if seen[[2]string{f, ds[0].msgID}] != 1 {
			t.Fatalf("follower %s named %d times, want once", f, seen[[2]string{f, ds[0].msgID}])
		}
	}
	for _, d := range ds {
		if n := len(d.recipients()); n > 1000 {
			t.Errorf("a message names %d recipients, want at most 1000", n)
		}
	}
	if len(all.errs) > 0 {
		t.Errorf("consumer errors: %v", all.errs)
	}
}

func TestRelayKeepsOrderPerAuthorAndPositionsGrow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(6)
	authors, followers := us[:3], us[3:]
	for _, a := range authors {
		e.follow(a, followers)
	}
	c := e.consumer(followers...)
	e.relay(outbox.Config{BatchSize: 64, PublishGroup: 16})

	// Three authors post concurrently while the relay runs: commits interleave.
	const perAuthor = 334
	var wg sync.WaitGroup
	for _, a := range authors {
		wg.Go(func() {
			for i := range perAuthor {
				e.post(a, fmt.Sprintf("%d", i))
			}
		})
	}
	wg.Wait()
	total := perAuthor * len(authors)
	waitFor(t, 60*time.Second, "all posts", func() bool { return len(c.deliveries()) >= total })

	ds := c.deliveries()
	if len(ds) != total {
		t.Fatalf("got %d deliveries, want %d", len(ds), total)
	}
	next := map[string]int{}
	var lastPos int64
	for _, d := range ds {
		want := next[d.frame.AuthorUserID]
		if d.frame.PostText != fmt.Sprint(want) {
			t.Fatalf("author %s: got post %q, want %d (order per author)", d.frame.AuthorUserID, d.frame.PostText, want)
		}
		next[d.frame.AuthorUserID]++
		if d.frame.Position <= lastPos {
			t.Fatalf("position %d after %d: must grow in relay order", d.frame.Position, lastPos)
		}
		lastPos = d.frame.Position
	}
}

func TestTwoRelaysRelayEveryPostExactlyOncePerFollower(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(12)
	authors, followers := us[:4], us[4:]
	for _, a := range authors {
		e.follow(a, followers)
	}
	c := e.consumer(followers...)
	e.relay(outbox.Config{BatchSize: 100, LockKey: 42})
	e.relay(outbox.Config{BatchSize: 100, LockKey: 42})

	const total = 2000
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range total / 4 {
				e.post(authors[w], fmt.Sprint(i))
			}
		})
	}
	wg.Wait()
	waitFor(t, 60*time.Second, "all rows relayed", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == total })
	waitFor(t, 10*time.Second, "all deliveries", func() bool { return len(c.deliveries()) >= total })

	counts := recipientCount(c.deliveries())
	if len(counts) != total*len(followers) {
		t.Errorf("%d (follower, post) pairs delivered, want %d", len(counts), total*len(followers))
	}
	for k, n := range counts {
		if n != 1 {
			t.Fatalf("follower %s got event %s %d times, want exactly once", k[0], k[1], n)
		}
	}
	if n := e.db.Count(t, "outbox", "position IS NULL"); n != 0 {
		t.Errorf("%d relayed rows without a position", n)
	}
}

func TestRelayCancelledMidBatchLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(601)
	author, followers := us[0], us[1:]
	e.follow(author, followers)
	c := e.consumer(followers...)
	const total = 300
	for i := range total {
		e.post(author, fmt.Sprint(i))
	}
	// Small groups so the batch is cut between confirms.
	stop := e.relay(outbox.Config{BatchSize: 200, PublishGroup: 4})
	waitFor(t, 30*time.Second, "some deliveries", func() bool { return len(c.deliveries()) >= 20 })
	stop()
	if n := e.db.Count(t, "outbox", "status = 'relayed'"); n == total {
		t.Logf("the relay finished before the cancel; the test proves less than intended")
	}
	e.relay(outbox.Config{})
	waitFor(t, 60*time.Second, "backlog relayed", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == total })

	var ids []string
	rows, err := e.db.Pool.Query(t.Context(), `SELECT event_id::text FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	waitFor(t, 20*time.Second, "every post to every follower", func() bool {
		counts := recipientCount(c.deliveries())
		for _, id := range ids {
			for _, f := range followers {
				if counts[[2]string{f, id}] < 1 {
					return false
				}
			}
		}
		return true
	})
}
