package websocket_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	ws "github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/internal/wait"
	"github.com/socialnet/social/outbox"
)

// TestHostileHandshakesAreThrottledPerUser (issue #24, item 8): a client reconnected its sockets
// with since=0 in a loop, each handshake a presence write and a resume. A user makes
// HandshakesPerUser handshakes a minute (a token bucket); the next is answered 429 with the wait
// in Retry-After and the API's JSON error, before any upgrade; another user is not held up.
func TestHostileHandshakesAreThrottledPerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *ws.Config) { c.HandshakesPerUser = 3 })
	user := uuid.NewString()
	for range 3 {
		e.dial(t, user, "since=0").c.CloseNow() // a socket closed at once still counts
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, e.wsURL("since=0"), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + e.token(t, user)}}})
	if err == nil {
		c.CloseNow()
		t.Fatal("a fourth handshake within the minute was accepted with HandshakesPerUser 3")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth handshake: %v, want 429", err)
	}
	// One handshake every 20 s comes back: the wait is at most that.
	if after, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || after < 1 || after > 20 {
		t.Fatalf("Retry-After %q, want 1..20 seconds", resp.Header.Get("Retry-After"))
	}
	var body struct {
		Message string `json:"message"`
		Code    int    `json:"code"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Code != 429 || body.Message == "" {
		t.Fatalf("error body %+v, %v", body, err)
	}
	if n := e.metric("social_ws_handshakes_throttled_total"); n != 1 {
		t.Fatalf("social_ws_handshakes_throttled_total = %v, want 1", n)
	}
	e.dial(t, uuid.NewString(), "since=0") // another user
}

// gatedMissed is the production resume (outbox.Resume) counting how many of its reads run at
// once; the first waits at the gate until the test opens it.
type gatedMissed struct {
	ws.MissedFrames
	gate chan struct{}

	mu            sync.Mutex
	running, most int
	atGate        int
}

func (g *gatedMissed) Missed(ctx context.Context, user string, after int64, limit, maxBytes int, types []string) ([][]byte, int64, bool, error) {
	g.mu.Lock()
	g.running++
	g.most = max(g.most, g.running)
	g.atGate++
	g.mu.Unlock()
	<-g.gate
	defer func() {
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
	}()
	return g.MissedFrames.Missed(ctx, user, after, limit, maxBytes, types)
}

func (g *gatedMissed) stats() (atGate, most int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.atGate, g.most
}

// TestHostileOneResumeAtATimePerUser (issue #24, item 8): 16 sockets of one user reconnecting with
// since=0 at once ran 16 resumes at once, each reading every page; another user's 100-frame resume
// went from 8 to 275 ms. One resume at a time per user (design.md §4): the others wait for their
// turn before the upgrade. The first read is held until every socket is either reading or
// waiting; then the reads must come one at a time, and every socket still gets all its frames.
func TestHostileOneResumeAtATimePerUser(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	reader, author := register(t, db, "Reader"), register(t, db, "Author")
	if err := postgres.NewFriendService(db.Pool).Set(context.Background(), reader, author); err != nil {
		t.Fatal(err)
	}
	const posts, sockets = 250, ws.DefaultMaxSocketsPerUser
	newest := relayedPosts(t, db, author, posts)
	missed := &gatedMissed{MissedFrames: outbox.NewResume(db.Pool), gate: make(chan struct{})}
	e := newEnvWith(t, db, "test.feed."+uuid.NewString(), slog.New(slog.DiscardHandler), func(c *ws.Config) {
		c.Missed = missed
		c.ResumeWait = time.Minute // the test holds the first resume; in production a few seconds
	})
	clients := make(chan *client, sockets)
	var dials sync.WaitGroup
	for range sockets {
		dials.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, e.wsURL("since=0"), &websocket.DialOptions{
				HTTPHeader: http.Header{"Authorization": {"Bearer " + e.token(t, reader)}}})
			if err != nil {
				status := 0
				if resp != nil {
					status = resp.StatusCode
				}
				t.Errorf("dial: %v (status %d)", err, status)
				return
			}
			c.SetReadLimit(1 << 20)
			cl := &client{t: t, c: c, frames: make(chan domain.FeedFrame, posts+10), done: make(chan struct{})}
			go cl.readLoop()
			t.Cleanup(func() { c.CloseNow() })
			clients <- cl
		})
	}
	// Every socket is reading (held at the gate) or waiting for its turn: without the turns, all
	// 16 would be reading at once.
	wait.For(t, time.Minute, "every resume reading or waiting for its turn", func() bool {
		atGate, _ := missed.stats()
		return atGate+int(e.metric("social_ws_resumes_waiting")) == sockets
	})
	close(missed.gate)
	dials.Wait()
	close(clients)
	n := 0
	for c := range clients {
		n++
		for want := 1; want <= posts; want++ {
			f := c.next(30 * time.Second)
			if f.Position > newest || f.Type != domain.EventPostCreated {
				t.Fatalf("socket %d: frame %d is %+v", n, want, f)
			}
		}
	}
	if n != sockets {
		t.Fatalf("%d of %d sockets opened", n, sockets)
	}
	if _, most := missed.stats(); most != 1 {
		t.Fatalf("%d resume reads of one user ran at once, want 1", most)
	}
}

// TestResumeFromFarBackEndsWithResyncAfterItsPages: a page of a resume reads a bounded stretch of
// the outbox (outbox.Resume), which may hold little for the user: one who follows many authors, few
// of whom write, resuming from far back would walk the whole outbox page by page. A resume reads
// at most ten times the pages its frames need (here 20 frames, pages of 10: 20 pages) and then
// sends a resync to the newest position, as when it missed more than it sends.
func TestResumeFromFarBackEndsWithResyncAfterItsPages(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	reader, quiet, busy := register(t, db, "Reader"), register(t, db, "Quiet"), register(t, db, "Busy")
	// More follows than a page reads rows: the page walks the outbox by position.
	db.Exec(t, `WITH u AS (INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
			SELECT gen_random_uuid(), 'Silent', 'Author', '1990-01-01', '', '', 'x', 1 FROM generate_series(1, $2) RETURNING id)
		INSERT INTO friendships (user_id, friend_id) SELECT $1, id FROM u`, reader, outbox.ResumeWindow)
	db.Exec(t, `INSERT INTO friendships (user_id, friend_id) VALUES ($1, $2)`, reader, quiet)
	relayedPosts(t, db, busy, 25*outbox.ResumeWindow) // nothing for the reader: 25 windows
	last := postRelayed(t, db, quiet, "at last")
	e := newEnvWith(t, db, "test.feed."+uuid.NewString(), slog.New(slog.DiscardHandler), func(c *ws.Config) {
		c.ResumeMax, c.ResumePage = 20, 10
	})
	c := e.dial(t, reader, "since=0")
	if f := c.next(30 * time.Second); f.Type != domain.FrameResync || f.Position != last.Position {
		t.Fatalf("got %+v, want a resync to %d after 20 pages", f, last.Position)
	}
	if got := c.closeStatus(10 * time.Second); got != websocket.StatusNormalClosure {
		t.Fatalf("close status %d, want 1000", got)
	}
}
