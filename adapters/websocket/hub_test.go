package websocket_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/socialnet/social/adapters/postgres/pgtest"
	ws "github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/internal/wait"
)

func TestUnauthorizedGets401WithoutUpgrade(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	expired, err := e.tokens.IssueUntil(uuid.NewString(), time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]http.Header{
		"no token":       {},
		"bad token":      {"Authorization": {"Bearer not.a.jwt"}},
		"expired token":  {"Authorization": {"Bearer " + expired}},
		"wrong scheme":   {"Authorization": {"Basic abc"}},
		"bad subproto":   {"Sec-Websocket-Protocol": {"bearer, garbage"}},
		"foreign secret": {"Authorization": {"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/post/feed/posted", nil)
			for k, v := range h {
				req.Header[k] = v
			}
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			var body struct {
				Message   string `json:"message"`
				RequestID string `json:"request_id"`
				Code      int    `json:"code"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if body.Code != 401 || body.Message == "" || body.RequestID == "" {
				t.Fatalf("error body %+v", body)
			}
		})
	}
}

func TestOriginCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *ws.Config) { c.AllowedOrigins = []string{"https://app.example.com"} })
	user := uuid.NewString()
	tok := e.token(t, user)
	dial := func(origin string) (int, error) {
		h := http.Header{"Authorization": {"Bearer " + tok}}
		if origin != "" {
			h.Set("Origin", origin)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, e.wsURL(""), &websocket.DialOptions{HTTPHeader: h})
		if err == nil {
			c.CloseNow()
		}
		if resp == nil {
			return 0, err
		}
		return resp.StatusCode, err
	}
	same := e.srv.URL // http://127.0.0.1:port: the page's own origin
	for origin, want := range map[string]int{"": 101, same: 101, "https://app.example.com": 101, "https://evil.example": 403} {
		got, err := dial(origin)
		if got != want {
			t.Errorf("origin %q: status %d (%v), want %d", origin, got, err, want)
		}
	}
}

func TestSubprotocolAuthIsAnsweredBearer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := uuid.NewString()
	c := e.dialWith(t, e.wsURL(""), &websocket.DialOptions{Subprotocols: []string{"bearer", e.token(t, user)}})
	if got := c.c.Subprotocol(); got != "bearer" {
		t.Fatalf("subprotocol %q, want bearer", got)
	}
	e.publish(t, frameAt(1, user), user)
	if f := c.next(15 * time.Second); f.Position != 1 {
		t.Fatalf("frame %+v", f)
	}
}

func TestFramesReachEveryTabOfRecipientsAndNobodyElse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b, other := uuid.NewString(), uuid.NewString(), uuid.NewString()
	a1, a2 := e.dial(t, a, ""), e.dial(t, a, "")
	bq := e.dialWith(t, e.wsURL("token="+e.token(t, b)), nil) // ?token= for simple clients
	o := e.dial(t, other, "")

	author := uuid.NewString()
	e.publish(t, frameAt(1, author), a, b) // routing key a, CC [b]
	for _, c := range []*client{a1, a2, bq} {
		if f := c.next(15 * time.Second); f.Position != 1 || f.AuthorUserID != author {
			t.Fatalf("frame %+v", f)
		}
	}
	e.publish(t, frameAt(2, author), b, uuid.NewString()) // only b (and a user not connected here)
	if f := bq.next(15 * time.Second); f.Position != 2 {
		t.Fatalf("frame %+v", f)
	}
	e.publish(t, frameAt(3, author), other)
	if f := o.next(15 * time.Second); f.Position != 3 {
		t.Fatalf("other got %+v first: a frame for someone else leaked", f)
	}
	e.publish(t, frameAt(4, author), a)
	for _, c := range []*client{a1, a2} {
		if f := c.next(15 * time.Second); f.Position != 4 {
			t.Fatalf("a got %+v, want position 4 (2 and 3 were not for a)", f)
		}
	}
	expectNone(t, bq)
	if n, err := testutil.GatherAndCount(e.reg, "social_ws_frames_sent_total"); err != nil || n != 1 {
		t.Fatalf("frames metric: %d series, %v", n, err)
	}
}

func TestExpiredTokenClosesWith4001(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok, err := e.tokens.IssueUntil(uuid.NewString(), time.Now().Add(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c := e.dialWith(t, e.wsURL(""), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if got := c.closeStatus(15 * time.Second); got != ws.StatusTokenExpired {
		t.Fatalf("close status %d, want 4001", got)
	}
}

func TestPresenceRemovedAfterLastSocketCloses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := uuid.NewString()
	if e.present(t, user) {
		t.Fatal("present before any socket")
	}
	c1, c2 := e.dial(t, user, ""), e.dial(t, user, "")
	if !e.present(t, user) {
		t.Fatal("not present with two sockets")
	}
	c1.c.Close(websocket.StatusNormalClosure, "")
	wait.For(t, 15*time.Second, "first socket gone", func() bool { return e.hub.Connections() == 1 })
	if !e.present(t, user) {
		t.Fatal("presence removed while a socket is still open")
	}
	c2.c.Close(websocket.StatusNormalClosure, "")
	wait.For(t, 15*time.Second, "presence removed", func() bool { return !e.present(t, user) })
}

func TestShutdownClosesSocketsWith1001(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.dial(t, uuid.NewString(), "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.closeStatus(15 * time.Second); got != websocket.StatusGoingAway {
		t.Fatalf("close status %d, want 1001", got)
	}
}

func TestQueryTokenIsNeverLogged(t *testing.T) {
	t.Parallel()
	var buf lockedBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnvWith(t, pgtest.New(t), "test.feed."+uuid.NewString(), log)
	user := uuid.NewString()
	tok := e.token(t, user)
	c := e.dialWith(t, e.wsURL("since=0&token="+tok), nil)
	e.publish(t, frameAt(1, uuid.NewString()), user)
	c.next(15 * time.Second)
	c.c.Close(websocket.StatusNormalClosure, "")
	wait.For(t, 15*time.Second, "socket gone", func() bool { return e.hub.Connections() == 0 })
	out := buf.String()
	if !strings.Contains(out, "token=REDACTED") {
		t.Fatalf("expected a redacted connect line in the debug log:\n%s", out)
	}
	if strings.Contains(out, tok) {
		t.Fatal("the token reached the log")
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestKeepalivePingsAnswerersAndDropsSilentPeers: pings come from per-socket timers (no
// goroutine per idle socket); a client that reads answers them and stays, one that never reads
// (no pong) is dropped after PingTimeout.
func TestKeepalivePingsAnswerersAndDropsSilentPeers(t *testing.T) {
	t.Parallel()
	// The timeout is what a pong may take on a loaded machine (the whole suite under -race): at
	// 300 ms the answering socket was once dropped too.
	e := newEnv(t, func(c *ws.Config) { c.PingInterval, c.PingTimeout = 50*time.Millisecond, 2*time.Second })
	var pings atomic.Int64
	live := e.dialWith(t, e.wsURL(""), &websocket.DialOptions{
		HTTPHeader:     http.Header{"Authorization": {"Bearer " + e.token(t, uuid.NewString())}},
		OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	silent, _, err := websocket.Dial(ctx, e.wsURL(""), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + e.token(t, uuid.NewString())}}})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseNow()
	wait.For(t, 10*time.Second, "the silent socket dropped", func() bool { return e.hub.Connections() == 1 })
	wait.For(t, 10*time.Second, "several pings answered", func() bool { return pings.Load() >= 5 })
	if e.hub.Connections() != 1 {
		t.Fatal("the answering socket was dropped")
	}
	live.c.Close(websocket.StatusNormalClosure, "")
}

// TestKeepaliveKeepsASlowReaderOfABacklog: a client that reads steadily but slower than its
// frames came has the pong to a ping behind megabytes still in the kernel's buffers, answered
// only once it has read that far. It is alive (its TCP acknowledges what it reads), so it keeps
// its socket; it was dropped after PingTimeout, and its client saw the stream end without a close
// frame (issue #24's dialog flood test, on a loaded machine).
func TestKeepaliveKeepsASlowReaderOfABacklog(t *testing.T) {
	t.Parallel()
	// A second without a byte acknowledged is far more than the reader's pace (a frame every
	// 100 ms), even on a loaded machine; the backlog takes four.
	e := newEnv(t, func(c *ws.Config) { c.PingInterval, c.PingTimeout = 100*time.Millisecond, time.Second })
	reader, author := uuid.NewString(), uuid.NewString()
	sock := dialSlowReader(t, e, reader, "")
	wait.For(t, 15*time.Second, "the socket registered", func() bool { return e.hub.Connections() == 1 })
	const n = 40 // 40 KB each: 1.6 MB, about four seconds at the reader's pace
	for i := range n {
		f := frameAt(int64(i+1), author)
		f.PostText = strings.Repeat("p", 40_000)
		e.publish(t, f, reader)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for want := int64(1); want <= n; want++ {
		_, b, err := sock.Read(ctx)
		if err != nil {
			t.Fatalf("the socket ended after %d of %d frames: %v", want-1, n, err)
		}
		var f wireFrame
		if err := json.Unmarshal(b, &f); err != nil || f.Position != want {
			t.Fatalf("frame %d: %.80s (%v)", want, b, err)
		}
		time.Sleep(100 * time.Millisecond) // the client's reading pace, not a wait for a condition
	}
	// What the kernel held was delivered even after a close: the socket must still be open.
	e.publish(t, frameAt(n+1, author), reader)
	if _, b, err := sock.Read(ctx); err != nil {
		t.Fatalf("the socket ended after the backlog: %v", err)
	} else if !strings.Contains(string(b), `"position":41`) {
		t.Fatalf("after the backlog: %.80s", b)
	}
}
