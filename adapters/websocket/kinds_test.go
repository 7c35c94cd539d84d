package websocket_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	ws "github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/domain"
)

func dialogFrameAt(pos int64, from, to string) []byte {
	b, _ := json.Marshal(domain.DialogFrame{Type: domain.FrameTypeDialogMessage, ID: uuid.NewString(), From: from, To: to,
		Text: "hi", Position: pos, CreatedAt: time.Now().UTC()})
	return b
}

// A socket forwards the frame kinds it asked for with ?types=: post frames only by default (an
// OTUS client never receives a dialog frame), both with types=post,dialog, dialog frames only with
// types=dialog. Three sockets of one user, fed through RabbitMQ.
func TestSocketForwardsOnlyTheKindsItAskedFor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user, peer := uuid.NewString(), uuid.NewString()
	otus := e.dial(t, user, "")
	both := e.dial(t, user, "types=post,dialog")
	dialogs := e.dial(t, user, "types=dialog&types=dialog")
	post := func(pos int64) { e.publish(t, frameAt(pos, peer), user) }
	message := func(pos int64) { e.publishRaw(t, dialogFrameAt(pos, peer, user), user, peer) }
	message(1)
	post(2)
	message(3)
	post(4)
	message(5)
	for _, s := range []struct {
		name string
		c    *client
		want []int64
	}{{"otus", otus, []int64{2, 4}}, {"post,dialog", both, []int64{1, 2, 3, 4, 5}}, {"dialog", dialogs, []int64{1, 3, 5}}} {
		for _, want := range s.want {
			f := s.c.next(10 * time.Second)
			wantType := domain.EventPostCreated
			if want%2 == 1 {
				wantType = domain.FrameTypeDialogMessage
			}
			if f.Position != want || f.Type != wantType {
				t.Fatalf("%s socket: frame %d %s, want %d %s", s.name, f.Position, f.Type, want, wantType)
			}
		}
	}
	// The OTUS socket got post 4 after message 3 was delivered to the others: it had its chance.
	expectNone(t, otus)
}

// An unknown kind is a 400 before any upgrade.
func TestUnknownTypesAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := uuid.NewString()
	for _, q := range []string{"types=posts", "types=", "types=post,,dialog", "types=dialog.message", "types=post&types=x"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, resp, err := websocket.Dial(ctx, e.wsURL(q), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + e.token(t, user)}}})
		cancel()
		if err == nil {
			c.CloseNow()
			t.Errorf("%s: upgraded", q)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %v, want 400", q, resp)
		}
	}
}

// messageRelayed sends a message through the real dialog service and relays its outbox row the
// way the dispatcher does (position from the sequence, status relayed).
func messageRelayed(t testing.TB, db *pgtest.DB, from, to, text string) int64 {
	t.Helper()
	ctx := context.Background()
	m, err := postgres.NewDialogService(db.Pool).Send(ctx, from, to, text)
	if err != nil {
		t.Fatal(err)
	}
	pos, _ := relayAggregate(t, db, m.ID)
	return pos
}

// Resume reads what the socket asked for, in one position order across posts and messages: a
// socket with types=post,dialog gets both, interleaved as relayed, with no gap and no duplicate;
// an OTUS socket resuming from the same position gets the posts only, a types=dialog socket the
// messages only (fails if resume ignores ?types=: the OTUS socket reads a dialog frame first).
func TestResumeReadsTheKindsTheSocketAskedFor(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	reader, author, friend := register(t, db, "Reader"), register(t, db, "Author"), register(t, db, "Friend")
	if err := postgres.NewFriendService(db.Pool).Set(context.Background(), reader, author); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, db, "test.feed."+uuid.NewString(), slog.New(slog.DiscardHandler), func(c *ws.Config) { c.ResumePage = 2 })
	var all, posts, messages []int64
	for range 4 {
		p := postRelayed(t, db, author, "post").Position
		m1 := messageRelayed(t, db, friend, reader, "to reader")
		m2 := messageRelayed(t, db, reader, friend, "from reader")
		messageRelayed(t, db, friend, author, "not the reader's") // interleaved, for nobody here
		all, posts, messages = append(all, p, m1, m2), append(posts, p), append(messages, m1, m2)
	}
	for _, s := range []struct {
		query string
		want  []int64
		live  []byte
	}{
		{"types=post,dialog&since=0", all, dialogFrameAt(1_000_000, friend, reader)},
		{"since=0", posts, mustJSON(frameAt(1_000_000, author))},
		{"types=dialog&since=" + itoa(messages[0]), messages[1:], dialogFrameAt(1_000_000, friend, reader)},
	} {
		c := e.dial(t, reader, s.query)
		for _, p := range s.want {
			if f := c.next(10 * time.Second); f.Position != p {
				t.Fatalf("%s: frame at %d (%s), want %d", s.query, f.Position, f.Type, p)
			}
		}
		// A live frame after the resume proves nothing else was coming from PostgreSQL.
		e.publishRaw(t, s.live, reader)
		if f := c.next(10 * time.Second); f.Position != 1_000_000 {
			t.Fatalf("%s: after the resume, frame at %d (%s)", s.query, f.Position, f.Type)
		}
		c.c.CloseNow()
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
