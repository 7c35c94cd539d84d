package outbox_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/outbox"
)

// With several publisher lanes the broker may interleave lanes in any order; what a reader
// relies on is per user: every frame a follower receives, of every author, comes in position
// order (a client resuming with ?since= after the last one it saw must not skip an earlier one
// still on its way), and each post reaches each follower exactly once.
func TestRelayWithLanesKeepsEachFollowersFramesInPositionOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(43)
	authors, followers := us[:3], us[3:]
	for _, a := range authors {
		e.follow(a, followers)
	}
	c := e.consumer(followers...)
	d := amqp.NewDialer([]string{amqptest.URL()})
	pub, err := amqp.NewPublisher(amqp.PublisherConfig{Dialer: d, Lanes: 4, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	e.relay(outbox.Config{Publisher: pub, BatchSize: 32, PublishGroup: 8})

	const perAuthor = 100
	var wg sync.WaitGroup
	for _, a := range authors {
		wg.Go(func() {
			for i := range perAuthor {
				e.post(a, fmt.Sprintf("%d", i))
			}
		})
	}
	wg.Wait()
	total := perAuthor * len(authors) * len(followers)
	waitFor(t, 60*time.Second, "every frame to every follower", func() bool {
		n := 0
		for _, dl := range c.deliveries() {
			n += len(dl.recipients())
		}
		return n >= total
	})

	type seen struct {
		lastPos  int64
		byAuthor map[string]int
	}
	per := map[string]*seen{}
	messagesPerPost := map[string]int{}
	for _, dl := range c.deliveries() {
		messagesPerPost[dl.msgID]++
		for _, f := range dl.recipients() {
			s := per[f]
			if s == nil {
				s = &seen{byAuthor: map[string]int{}}
				per[f] = s
			}
			if dl.frame.Position <= s.lastPos {
				t.Fatalf("follower %s: position %d after %d", f, dl.frame.Position, s.lastPos)
			}
			s.lastPos = dl.frame.Position
			if want := fmt.Sprint(s.byAuthor[dl.frame.AuthorUserID]); dl.frame.PostText != want {
				t.Fatalf("follower %s, author %s: post %q where %s was due", f, dl.frame.AuthorUserID, dl.frame.PostText, want)
			}
			s.byAuthor[dl.frame.AuthorUserID]++
		}
	}
	for _, f := range followers {
		s := per[f]
		if s == nil {
			t.Fatalf("follower %s got nothing", f)
		}
		for _, a := range authors {
			if s.byAuthor[a] != perAuthor {
				t.Errorf("follower %s: %d posts of %s, want %d exactly once each", f, s.byAuthor[a], a, perAuthor)
			}
		}
	}
	// 40 followers over 4 lanes: a post goes out as one message per lane in use.
	for id, n := range messagesPerPost {
		if n < 2 {
			t.Fatalf("event %s went out as %d message(s): lanes not used", id, n)
		}
	}
}
