package outbox_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

// TestRelayRoutesEachPostOncePerInstanceToItsOnlineFollowers: one message per realtime instance
// that holds a follower, routing key = the instance's id, naming that instance's followers only;
// nothing for offline followers, strangers, or an instance whose lease lapsed.
func TestRelayRoutesEachPostOncePerInstanceToItsOnlineFollowers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(7)
	author, f1, f2, f3, offline, stranger, lapsed := us[0], us[1], us[2], us[3], us[4], us[5], us[6]
	e.follow(author, []string{f1, f2, f3, offline, lapsed})
	a, b, c := e.connected(f1, f2), e.connected(f3), e.connected(stranger)
	e.online("rt-lapsed", lapsed)
	e.db.Exec(t, `UPDATE realtime_instances SET lease_until = now() - interval '1 second' WHERE id = 'rt-lapsed'`)
	d := e.consumer("rt-lapsed")
	e.relay(outbox.Config{})
	p := e.post(author, "hello followers")

	wait.For(t, 10*time.Second, "deliveries to both instances", func() bool { return len(a.deliveries()) > 0 && len(b.deliveries()) > 0 })
	for _, tc := range []struct {
		c    *consumer
		want []string
	}{{a, []string{f1, f2}}, {b, []string{f3}}} {
		ds := tc.c.deliveries()
		if len(ds) != 1 {
			t.Fatalf("instance got %d deliveries, want 1", len(ds))
		}
		got := slices.Sorted(slices.Values(ds[0].recipients()))
		if !slices.Equal(got, slices.Sorted(slices.Values(tc.want))) {
			t.Errorf("recipients %v, want %v", got, tc.want)
		}
		fr := ds[0].frame
		if fr.PostID != p.ID || fr.PostText != "hello followers" || fr.AuthorUserID != author || fr.Type != domain.EventPostCreated || fr.Position < 1 || fr.CreatedAt.IsZero() {
			t.Errorf("frame %+v does not describe post %s", fr, p.ID)
		}
		var raw map[string]any
		_ = json.Unmarshal(ds[0].body, &raw)
		for _, k := range []string{"postId", "postText", "author_user_id", "type", "position", "created_at"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("frame lacks %q: %s", k, ds[0].body)
			}
		}
		if len(tc.c.errs) > 0 {
			t.Errorf("consumer errors: %v", tc.c.errs)
		}
	}
	wait.For(t, 5*time.Second, "row relayed", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == 1 })
	// Give a stray message every chance to arrive before declaring none did: a second post
	// reaches instance a after anything the first could have sent anywhere (one channel, FIFO).
	e.post(author, "second")
	wait.For(t, 10*time.Second, "second delivery", func() bool { return len(a.deliveries()) == 2 })
	if n := len(c.deliveries()) + len(d.deliveries()); n != 0 {
		t.Errorf("a stranger's or a lapsed instance got %d deliveries", n)
	}
}

// TestRelayReadsABigAuthorFromThePresenceSide: an author with more followers than twice the users
// online is routed from presence (a primary-key probe per online user), and reaches exactly its online
// followers, each once; a small author beside it is routed from its followers.
func TestRelayReadsABigAuthorFromThePresenceSide(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(2503)
	big, small, followers := us[0], us[1], us[2:]
	e.follow(big, followers)
	e.follow(small, followers[:2])
	online := followers[:150] // 150 of 2,501 online, on one instance
	all := e.connected(online...)
	e.relay(outbox.Config{})
	e.post(big, "to many")
	e.post(small, "to two")

	wait.For(t, 20*time.Second, "both posts", func() bool { return len(all.deliveries()) >= 2 })
	seen := recipientCount(all.deliveries())
	for _, d := range all.deliveries() {
		want := online
		if d.frame.AuthorUserID == small {
			want = followers[:2]
		}
		if len(d.recipients()) != len(want) {
			t.Errorf("post of %s named %d recipients, want %d", d.frame.AuthorUserID, len(d.recipients()), len(want))
		}
		for _, f := range want {
			if n := seen[[2]string{f, d.frame.PostID + d.frame.Type}]; n != 1 {
				t.Fatalf("follower %s named %d times, want once", f, n)
			}
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
	c := e.connected(followers...)
	e.relay(outbox.Config{BatchSize: 64})

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
	wait.For(t, 60*time.Second, "all posts", func() bool { return len(c.deliveries()) >= total })

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
	c := e.connected(followers...)
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
	wait.For(t, 60*time.Second, "all rows relayed", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == total })
	wait.For(t, 10*time.Second, "all deliveries", func() bool { return len(c.deliveries()) >= total })

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
	c := e.connected(followers...)
	const total = 300
	for i := range total {
		e.post(author, fmt.Sprint(i))
	}
	// Small groups so the batch is cut between confirms.
	stop := e.relay(outbox.Config{BatchSize: 200})
	wait.For(t, 30*time.Second, "some deliveries", func() bool { return len(c.deliveries()) >= 20 })
	stop()
	if n := e.db.Count(t, "outbox", "status = 'relayed'"); n == total {
		t.Logf("the relay finished before the cancel; the test proves less than intended")
	}
	e.relay(outbox.Config{})
	wait.For(t, 60*time.Second, "backlog relayed", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == total })

	wait.For(t, 20*time.Second, "every post to every follower", func() bool {
		posts := map[string]map[string]bool{} // follower → posts named to them
		for _, d := range c.deliveries() {
			for _, f := range d.recipients() {
				if posts[f] == nil {
					posts[f] = map[string]bool{}
				}
				posts[f][d.frame.PostID] = true
			}
		}
		for _, f := range followers {
			if len(posts[f]) != total {
				return false
			}
		}
		return true
	})
}
