package websocket_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
)

// relayedPosts inserts n posts of author with their events and relayed outbox rows at the next n
// positions (bulk SQL, as postRelayed does one by one) and returns the last position.
func relayedPosts(t testing.TB, db *pgtest.DB, author string, n int) int64 {
	t.Helper()
	var last int64
	err := db.Pool.QueryRow(context.Background(), `
		WITH p AS (SELECT uuidv7 AS id, n FROM (SELECT gen_random_uuid() AS uuidv7, n FROM generate_series(1, $2) n) s),
		ps AS (INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version)
		       SELECT id, $1, 'missed ' || n, now(), now(), 1 FROM p),
		ev AS (INSERT INTO events (id, aggregate_id, aggregate_version, type, payload)
		       SELECT id, id, 1, 'post.created', jsonb_build_object('postId', id, 'author_user_id', $1::text, 'text', 'missed ' || n) FROM p
		       RETURNING id),
		ob AS (INSERT INTO outbox (event_id, author_user_id, status, position, relayed_at)
		       SELECT id, $1, 'relayed', nextval('outbox_position_seq'), now() FROM (SELECT id FROM p ORDER BY n) s
		       RETURNING position)
		SELECT max(position) FROM ob`, author, n).Scan(&last)
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// A resume is bounded (design.md §4): 1,100 missed posts give the first 1,000 in order, then a
// resync frame naming the newest position, and the socket is closed normally.
func TestResumeOfMoreThanItsBoundEndsWithResync(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	reader, author := register(t, db, "Reader"), register(t, db, "Author")
	if err := postgres.NewFriendService(db.Pool).Set(context.Background(), reader, author); err != nil {
		t.Fatal(err)
	}
	newest := relayedPosts(t, db, author, 1100)
	e := newEnvWith(t, db, "test.feed."+uuid.NewString(), slog.New(slog.DiscardHandler))
	c := e.dial(t, reader, "since=0")
	var last int64
	for i := range 1000 {
		f := c.next(15 * time.Second)
		if f.Type != domain.EventPostCreated || f.Position <= last {
			t.Fatalf("frame %d: %+v after position %d", i, f, last)
		}
		last = f.Position
	}
	f := c.next(15 * time.Second)
	if f.Type != domain.FrameResync || f.Position != newest {
		t.Fatalf("after 1,000 frames got %+v, want a resync to %d", f, newest)
	}
	if got := c.closeStatus(10 * time.Second); got != websocket.StatusNormalClosure {
		t.Fatalf("close status %d, want 1000", got)
	}
	if n := e.metric("social_ws_resyncs_total"); n != 1 {
		t.Errorf("social_ws_resyncs_total = %v", n)
	}
	// Reconnecting from the resync's position resumes exactly, and live frames flow.
	c2 := e.dial(t, reader, "since="+itoa(f.Position))
	live := postRelayed(t, db, author, "live")
	e.publish(t, live, reader)
	if g := c2.next(15 * time.Second); g.Position != live.Position {
		t.Fatalf("after the resync got %+v, want the live post", g)
	}
}

// A since above the newest position (a client from before the database was restored) used to
// drop every live frame at or below it for ever. It gets a resync to the newest position.
func TestResumeAboveTheNewestPositionEndsWithResync(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	reader, author := register(t, db, "Reader"), register(t, db, "Author")
	if err := postgres.NewFriendService(db.Pool).Set(context.Background(), reader, author); err != nil {
		t.Fatal(err)
	}
	newest := relayedPosts(t, db, author, 3)
	e := newEnvWith(t, db, "test.feed."+uuid.NewString(), slog.New(slog.DiscardHandler))
	c := e.dial(t, reader, "since="+itoa(newest+500))
	if f := c.next(15 * time.Second); f.Type != domain.FrameResync || f.Position != newest {
		t.Fatalf("got %+v, want a resync to %d", f, newest)
	}
	if got := c.closeStatus(10 * time.Second); got != websocket.StatusNormalClosure {
		t.Fatalf("close status %d, want 1000", got)
	}
}

// Resume sends what is true now (design.md §4): a post deleted since only as its tombstone, an
// edited post with its current text; the secret and the old text never reach the client, here a
// follower who followed after all of it happened.
func TestResumeSendsOnlyWhatIsTrueNow(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	reader, author := register(t, db, "Reader"), register(t, db, "Author")
	posts := postgres.NewPostService(db.Pool)
	ctx := context.Background()
	secret, err := posts.Create(ctx, author, "the secret")
	if err != nil {
		t.Fatal(err)
	}
	edited, err := posts.Create(ctx, author, "the first draft")
	if err != nil {
		t.Fatal(err)
	}
	if err := posts.Delete(ctx, author, secret.ID); err != nil {
		t.Fatal(err)
	}
	if err := posts.Update(ctx, author, edited.ID, "as published"); err != nil {
		t.Fatal(err)
	}
	relayPending(t, db) // the four rows, in id order
	kept := postRelayed(t, db, author, "kept")
	if err := postgres.NewFriendService(db.Pool).Set(ctx, reader, author); err != nil {
		t.Fatal(err)
	}

	e := newEnvWith(t, db, "test.feed."+uuid.NewString(), slog.New(slog.DiscardHandler))
	c := e.dial(t, reader, "since=0")
	var got []domain.FeedFrame
	for {
		f := c.next(15 * time.Second)
		got = append(got, f)
		if f.PostID == kept.PostID {
			break
		}
	}
	var kinds []string
	for _, f := range got {
		if strings.Contains(f.PostText, "secret") || strings.Contains(f.PostText, "draft") {
			t.Errorf("resumed frame carries replaced or deleted text: %+v", f)
		}
		if f.PostID == secret.ID && f.Type != domain.EventPostDeleted {
			t.Errorf("the deleted post came back as %s", f.Type)
		}
		if f.PostID == edited.ID && f.PostText != "as published" {
			t.Errorf("the edited post came back with %q", f.PostText)
		}
		kinds = append(kinds, f.Type)
	}
	// The deleted post's tombstone, the edited post's created and updated frames (both with its
	// text now), and the last post.
	if len(got) != 4 {
		t.Errorf("resumed %d frames (%v), want 4", len(got), kinds)
	}
}
