package websocket_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	ws "github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/internal/wait"
)

// wireFrame is any frame a socket receives, read for what these tests check.
type wireFrame struct {
	Type     string   `json:"type"`
	Position int64    `json:"position"`
	Kinds    []string `json:"kinds"`
}

// dialSlowReader opens a socket of user with query whose client reads nothing until the test reads
// it, through a small fixed receive buffer: what the server sends piles up in its own buffers.
func dialSlowReader(t *testing.T, e *env, user, query string) *websocket.Conn {
	t.Helper()
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10) })
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, e.wsURL(query), &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}},
		HTTPHeader: http.Header{"Authorization": {"Bearer " + e.token(t, user)}}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// TestDialogFloodShedsMessagesAndKeepsPostFrames (issue #24, item 7): others sent a user 40 KB
// messages faster than the user's socket drained them; the socket's one queue overflowed and it
// was closed with 1013, and the posts of a friend made meanwhile never arrived live. Now the
// socket's dialog frames have a bound of their own: past it they are dropped until those queued
// are written, and a resync frame with kinds ["dialog"] covers them, before any later frame; the
// post frames all arrive, in order, on the same socket, which stays open.
func TestDialogFloodShedsMessagesAndKeepsPostFrames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *ws.Config) {
		c.SendQueueBytes = 256 << 10
		c.DialogQueueBytes = 64 << 10
	})
	victim, friend, witness := uuid.NewString(), uuid.NewString(), uuid.NewString()
	sock := dialSlowReader(t, e, victim, "types=post,dialog")
	seen := e.dial(t, witness, "")
	wait.For(t, 15*time.Second, "both sockets registered", func() bool { return e.hub.Connections() == 2 })

	// 200 messages of 40 KB from four senders (8 MB: more than the socket's buffers and its
	// queue hold), and a post of the friend every tenth.
	text := strings.Repeat("m", 40_000)
	spammers := []string{uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()}
	var posts []int64
	pos := int64(0)
	for i := range 200 {
		pos++
		from := spammers[i%len(spammers)]
		m := domain.NewDialogFrame("", domain.DialogMessageSent{MessageID: uuid.NewString(), From: from, To: victim, Text: text}, pos, time.Now())
		body, _ := json.Marshal(m)
		e.publishRaw(t, body, victim, from)
		if i%10 == 9 {
			pos++
			e.publish(t, frameAt(pos, friend), victim)
			posts = append(posts, pos)
		}
	}
	// The witness's frame comes after every frame above in the instance's one queue: once it has
	// it, the hub has handed the victim's socket all of them.
	pos++
	e.publish(t, frameAt(pos, friend), victim, witness)
	posts = append(posts, pos)
	if f := seen.next(30 * time.Second); f.Position != pos {
		t.Fatalf("witness got %+v", f)
	}

	// Now the victim reads: every post, in order; a message not received must be covered by a
	// resync naming dialog (its position at or above the message's) before any later frame.
	var gotPosts []int64
	var last, covered int64
	resyncs := 0
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(gotPosts) < len(posts) {
		_, b, err := sock.Read(ctx)
		if err != nil {
			t.Fatalf("the victim's socket ended after %d of %d posts: %v (close %d)", len(gotPosts), len(posts), err, websocket.CloseStatus(err))
		}
		var f wireFrame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		if f.Type == domain.FrameResync {
			if len(f.Kinds) != 1 || f.Kinds[0] != domain.KindDialog || f.Position < last {
				t.Fatalf("resync %s after position %d", b, last)
			}
			covered = max(covered, f.Position)
			resyncs++
			continue
		}
		if f.Position <= last {
			t.Fatalf("position %d after %d", f.Position, last)
		}
		for x := last + 1; x < f.Position; x++ { // skipped: messages (posts are never dropped)
			if contains(posts, x) {
				t.Fatalf("post %d was dropped", x)
			}
			if x > covered {
				t.Fatalf("message %d was dropped and no resync said so before frame %d", x, f.Position)
			}
		}
		last = f.Position
		if f.Type == domain.EventPostCreated {
			gotPosts = append(gotPosts, f.Position)
		}
	}
	t.Logf("%d posts in order; %v messages dropped, covered by %d resyncs", len(gotPosts), e.metric("social_ws_dialog_frames_shed_total"), resyncs)
	if !equalInts(gotPosts, posts) {
		t.Fatalf("posts %v, want %v", gotPosts, posts)
	}
	if resyncs == 0 || e.metric("social_ws_dialog_frames_shed_total") == 0 {
		t.Fatalf("%d resyncs, %v frames shed: the flood did not pass the bound", resyncs, e.metric("social_ws_dialog_frames_shed_total"))
	}
	if n := e.metric("social_ws_slow_client_disconnects_total"); n != 0 {
		t.Fatalf("%v sockets closed as too slow", n)
	}
	if n := e.hub.Connections(); n != 2 {
		t.Fatalf("%d sockets open, want both", n)
	}
}

func contains(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
