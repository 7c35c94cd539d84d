package websocket_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	ws "github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/internal/wait"
)

// register creates a user through the real user service.
func register(t testing.TB, db *pgtest.DB, name string) string {
	t.Helper()
	r := domain.Registration{FirstName: name, SecondName: "Test", Birthdate: "1990-01-02", City: "X", Password: "password1"}
	birth, err := r.Validate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, err := postgres.NewUserService(db.Pool).Register(context.Background(), r, birth, "hash")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// postRelayed creates a post and relays its outbox row the way the dispatcher does (position from
// the sequence, status relayed), returning the frame the dispatcher would publish.
func postRelayed(t testing.TB, db *pgtest.DB, author, text string) domain.FeedFrame {
	t.Helper()
	ctx := context.Background()
	p, err := postgres.NewPostService(db.Pool).Create(ctx, author, text)
	if err != nil {
		t.Fatal(err)
	}
	pos, at := relayAggregate(t, db, p.ID)
	return domain.NewFeedFrame(domain.EventPostCreated, domain.PostChanged{PostID: p.ID, AuthorUserID: author, Text: text}, pos, at)
}

// relayAggregate relays the outbox row of aggregate id's event the way the dispatcher does
// (position from the sequence, status relayed) and returns its position and event time.
func relayAggregate(t testing.TB, db *pgtest.DB, id string) (int64, time.Time) {
	t.Helper()
	var pos int64
	var at time.Time
	err := db.Pool.QueryRow(context.Background(), `
		UPDATE outbox o SET position = nextval('outbox_position_seq'), status = 'relayed', relayed_at = now()
		FROM events e WHERE e.id = o.event_id AND e.aggregate_id = $1
		RETURNING o.position, e.created_at`, id).Scan(&pos, &at)
	if err != nil {
		t.Fatal(err)
	}
	return pos, at
}

// relayPending relays every pending outbox row in id order, as the dispatcher would.
func relayPending(t testing.TB, db *pgtest.DB) {
	t.Helper()
	db.Exec(t, `UPDATE outbox o SET position = s.pos, status = 'relayed', relayed_at = now()
		FROM (SELECT id, nextval('outbox_position_seq') AS pos FROM (SELECT id FROM outbox WHERE status = 'pending' ORDER BY id) q) s
		WHERE o.id = s.id`)
}

// duringResume runs fn before the first page of a resume is read.
type duringResume struct {
	inner ws.MissedFrames
	once  sync.Once
	fn    func()
}

func (d *duringResume) Missed(ctx context.Context, user string, after int64, limit, maxBytes int, types []string) ([][]byte, int64, bool, error) {
	d.once.Do(d.fn)
	return d.inner.Missed(ctx, user, after, limit, maxBytes, types)
}

func (d *duringResume) Newest(ctx context.Context) (int64, error) { return d.inner.Newest(ctx) }
func (d *duringResume) Gap(ctx context.Context, users []string, after int64, limit int) ([]byte, int64, bool, error) {
	return d.inner.Gap(ctx, users, after, limit)
}

func TestResumeSendsMissedFramesThenLiveWithoutGapOrDuplicate(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	reader, followed, stranger := register(t, db, "Reader"), register(t, db, "Followed"), register(t, db, "Stranger")
	if err := postgres.NewFriendService(db.Pool).Set(context.Background(), reader, followed); err != nil {
		t.Fatal(err)
	}
	var posts []domain.FeedFrame
	for i := range 5 {
		posts = append(posts, postRelayed(t, db, followed, "missed "+string(rune('a'+i))))
		postRelayed(t, db, stranger, "not followed") // interleaved positions the reader must not get
	}

	hook := &duringResume{}
	e := newEnvWith(t, db, "test.feed."+uuid.NewString(), slog.New(slog.DiscardHandler), func(c *ws.Config) {
		hook.inner = c.Missed
		c.Missed = hook
		c.ResumePage = 2 // several pages
	})
	probe := e.dial(t, reader, "") // a second tab: proves when live frames reached the hub
	// While the resuming socket is bound but has not read PostgreSQL yet, two live frames arrive:
	// one it will also read from the database (a duplicate across the switch), one published
	// after its row was committed (also in the database).
	hook.fn = func() {
		posts = append(posts, postRelayed(t, db, followed, "during resume"))
		e.publish(t, posts[4], reader)
		e.publish(t, posts[5], reader)
		for _, want := range []int64{posts[4].Position, posts[5].Position} {
			if f := probe.next(15 * time.Second); f.Position != want {
				t.Errorf("probe got %d, want %d", f.Position, want)
			}
		}
	}
	hookDone := make(chan struct{})
	fn := hook.fn
	hook.fn = func() { fn(); close(hookDone) }
	c := e.dial(t, reader, "since="+itoa(posts[1].Position))
	<-hookDone
	for _, want := range posts[2:] {
		f := c.next(15 * time.Second)
		if f.Position != want.Position || f.PostID != want.PostID || f.PostText != want.PostText {
			t.Fatalf("got %+v, want %+v", f, want)
		}
	}
	live := postRelayed(t, db, followed, "live after resume")
	e.publish(t, live, reader)
	if f := c.next(15 * time.Second); f.Position != live.Position {
		t.Fatalf("after resume got position %d, want %d (a duplicate or a gap)", f.Position, live.Position)
	}
	expectNone(t, c)
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestSlowReaderIsDisconnectedWhileFastOneKeepsReceiving(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *ws.Config) {
		c.SendQueueBytes = 8 * 64 << 10 // eight of its 64 KiB frames
		c.WriteTimeout = time.Second
	})
	slowUser, fastUser := uuid.NewString(), uuid.NewString()
	fast := e.dial(t, fastUser, "")
	// The slow client never reads: its TCP buffers fill, then its send queue.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A small fixed receive buffer (no autotuning): the server's send buffer (≤ 4 MiB) is then
	// most of what the slow client's backlog can hide in.
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10) })
	}}
	httpc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	slow, _, err := websocket.Dial(ctx, e.wsURL("token="+e.token(t, slowUser)), &websocket.DialOptions{HTTPClient: httpc})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	slow.SetReadLimit(1 << 20)
	wait.For(t, 15*time.Second, "both sockets registered", func() bool { return e.hub.Connections() == 2 })

	pad := make([]byte, 32<<10)
	_, _ = rand.Read(pad)
	text := strings.Repeat(hex.EncodeToString(pad), 1) // 64 KiB per frame
	const n = 120                                      // ~8 MB: more than the socket buffers hold
	author := uuid.NewString()
	// The publisher stays at most a few frames ahead of the fast client, which therefore never
	// has more than that queued, while the slow one accumulates everything.
	const window = 4
	got := 0
	receive := func() {
		got++
		if f := fast.next(10 * time.Second); f.Position != int64(got) {
			t.Fatalf("fast client got %d, want %d", f.Position, got)
		}
	}
	for i := 1; i <= n; i++ {
		f := frameAt(int64(i), author)
		f.PostText = text
		e.publish(t, f, slowUser, fastUser)
		if i > window {
			receive()
		}
	}
	for got < n {
		receive()
	}
	wait.For(t, 20*time.Second, "slow client evicted", func() bool {
		return e.metric("social_ws_slow_client_disconnects_total") == 1 && e.hub.Connections() == 1
	})
	// The slow client finds its socket closed: with 1013 if the close frame got through the full
	// buffers, or without a close frame if the write timed out first.
	for {
		_, _, err := slow.Read(context.Background())
		if err != nil {
			if s := websocket.CloseStatus(err); s != websocket.StatusTryAgainLater && s != -1 {
				t.Fatalf("slow client closed with %d, want 1013 or a dropped connection", s)
			}
			break
		}
	}
}

// follow makes user follow author (SQL; the friend service is tested elsewhere).
func follow(t testing.TB, db *pgtest.DB, user, author string) {
	t.Helper()
	db.Exec(t, `INSERT INTO friendships (user_id, friend_id) VALUES ($1, $2)`, user, author)
}
