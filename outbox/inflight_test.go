package outbox_test

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

// A frame can reach the broker before its row is marked relayed. A realtime instance binding a
// user at that moment misses the live copy and resumes from the database, so the position of a
// published, unmarked row must already be readable there (outbox_inflight), and after the mark
// exactly once, from outbox.
func TestResumeReadsPositionsInFlightBeforeTheMark(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(2)
	author, follower := us[0], us[1]
	e.follow(author, []string{follower})
	c := e.connected(follower)
	live, _ := url.Parse(amqptest.URL())
	proxy, addr := newCutProxy(t, live.Host)
	via := *live
	via.Host = addr
	e.relay(outbox.Config{Publisher: e.publisher(via.String())})
	missed := func(after int64) []domain.FeedFrame {
		t.Helper()
		raw, _, _, err := outbox.NewResume(e.db.Pool).Missed(context.Background(), follower, after, 100, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]domain.FeedFrame, len(raw))
		for i, b := range raw {
			if err := json.Unmarshal(b, &out[i]); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}

	e.post(author, "first")
	wait.For(t, 10*time.Second, "first post relayed", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == 1 })
	proxy.hold() // the broker's confirms stay in the proxy: what follows is published, not marked
	e.post(author, "second")
	wait.For(t, 10*time.Second, "second post delivered", func() bool { return len(c.deliveries()) == 2 })
	first, second := c.deliveries()[0].frame, c.deliveries()[1].frame
	if n := e.db.Count(t, "outbox", "status = 'pending'", "position IS NULL"); n != 1 {
		t.Fatalf("%d pending rows without a position in outbox, want the second post's", n)
	}
	got := missed(first.Position)
	if len(got) != 1 || got[0].PostText != "second" || got[0].Position != second.Position {
		t.Fatalf("resume after %d while in flight: %+v, want the second post at %d", first.Position, got, second.Position)
	}
	if got := missed(0); len(got) != 2 || got[0].Position != first.Position {
		t.Fatalf("resume from 0 while in flight: %+v", got)
	}

	// The connection dies unconfirmed: the row is released and relayed again at a new position.
	proxy.cut()
	wait.For(t, 10*time.Second, "second post relayed", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == 2 })
	got = missed(0)
	if len(got) != 2 || got[0].PostText != "first" || got[1].PostText != "second" || got[1].Position <= second.Position {
		t.Fatalf("resume after the mark: %+v, want first then second above %d, once each", got, second.Position)
	}
	if n := e.db.Count(t, "outbox_inflight"); n != 0 {
		t.Errorf("%d batches left in outbox_inflight after every row was marked", n)
	}
}
