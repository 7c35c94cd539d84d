package outbox_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

// The relay sends what is true now (design.md §4, §5), which matters for a backlog relayed after
// an outage and for a replay: a post deleted before its row is relayed sends nothing but its
// tombstone, an edited one its current text; replaying them later sends no old text either.
func TestRelayAndReplaySendOnlyWhatIsTrueNow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(2)
	author, follower := us[0], us[1]
	e.follow(author, []string{follower})
	c := e.connected(follower)
	ctx := context.Background()

	// Written while no dispatcher runs: the backlog of an outage.
	secret := e.post(author, "the secret")
	edited := e.post(author, "the first draft")
	if err := e.posts.Delete(ctx, author, secret.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.posts.Update(ctx, author, edited.ID, "as published"); err != nil {
		t.Fatal(err)
	}
	last := e.post(author, "last")
	e.relay(outbox.Config{})
	wait.For(t, 20*time.Second, "the last post", func() bool { return named(c, last.ID, follower) })
	check := func(when string) (frames int) {
		t.Helper()
		for _, d := range c.deliveries() {
			f := d.frame
			if strings.Contains(f.PostText, "secret") || strings.Contains(f.PostText, "draft") {
				t.Errorf("%s: a frame carries replaced or deleted text: %+v", when, f)
			}
			if f.PostID == secret.ID && f.Type != domain.EventPostDeleted {
				t.Errorf("%s: the deleted post went out as %s", when, f.Type)
			}
			frames++
		}
		return frames
	}
	// The tombstone, created and updated of the edited post (its text now), the last post.
	if n := check("relayed backlog"); n != 4 {
		t.Errorf("relayed %d frames, want 4", n)
	}
	wait.For(t, 10*time.Second, "5 rows relayed (the superseded one too)", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == 5 })

	res, err := outbox.Replay(ctx, e.db.Pool, outbox.ReplayOptions{ReplayFilter: outbox.ReplayFilter{FromPosition: 1}})
	if err != nil || res.Enqueued != 5 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	wait.For(t, 20*time.Second, "the replayed frames", func() bool { return len(c.deliveries()) >= 8 })
	wait.For(t, 20*time.Second, "the replay relayed", func() bool { return e.db.Count(t, "outbox", "status = 'pending'") == 0 })
	if n := check("replayed"); n != 8 {
		t.Errorf("%d frames after the replay, want 8", n)
	}
}
