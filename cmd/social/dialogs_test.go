package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// anyFrame is a frame of either kind as a socket receives it.
type anyFrame struct {
	Type     string `json:"type"`
	Position int64  `json:"position"`
	// dialog.message
	ID, From, To, Text string
	CreatedAt          time.Time `json:"created_at"`
	// post.*
	PostID   string `json:"postId"`
	PostText string `json:"postText"`
	raw      []byte
}

// rawSocket is a websocket client of /post/feed/posted dialled with a query (?types=, ?since=).
type rawSocket struct {
	t      testing.TB
	name   string
	frames chan anyFrame
}

func dialKinds(t testing.TB, base string, u user, query, name string) *rawSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(base, "http") + wsPath
	if query != "" {
		url += "?" + query
	}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"bearer", u.token}})
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	c.SetReadLimit(1 << 20)
	s := &rawSocket{t: t, name: name, frames: make(chan anyFrame, 1000)}
	go func() {
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			f := anyFrame{raw: b}
			if err := json.Unmarshal(b, &f); err != nil {
				t.Errorf("%s: bad frame %s", name, b)
				continue
			}
			s.frames <- f
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return s
}

func (s *rawSocket) next(d time.Duration) anyFrame {
	s.t.Helper()
	select {
	case f := <-s.frames:
		return f
	case <-time.After(d):
		s.t.Fatalf("%s: no frame within %s", s.name, d)
	}
	return anyFrame{}
}

// none checks that nothing arrived; call it after a later frame reached the same socket.
func (s *rawSocket) none() {
	s.t.Helper()
	select {
	case f := <-s.frames:
		s.t.Fatalf("%s got a frame that was not for it: %s", s.name, f.raw)
	default:
	}
}

func send(t testing.TB, api string, from, to user, text string) {
	t.Helper()
	call(t, "POST", api+"/dialog/"+to.id+"/send", from.token, map[string]string{"text": text}, nil)
}

// A message goes live, through the dispatcher and RabbitMQ, to the recipient's and the sender's
// sockets that asked for dialog frames, on every instance; not to the recipient's OTUS socket
// (no ?types=), and not to anyone else.
func TestDialogMessageIsDeliveredLiveToBothUsers(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	api, _ := s.start(t, "api")
	rtA, _ := s.start(t, "realtime")
	rtB, _ := s.start(t, "realtime")
	s.startDispatcher(t)
	a, b, c := signUp(t, api, "Anna"), signUp(t, api, "Boris"), signUp(t, api, "Clara")
	follow(t, api, b, a)
	follow(t, api, c, a)

	bDialogs := dialKinds(t, rtA, b, "types=post,dialog", "Boris@A with dialogs")
	bOTUS := dialKinds(t, rtB, b, "", "Boris@B, OTUS")
	aOtherTab := dialKinds(t, rtB, a, "types=dialog,post", "Anna's other tab@B")
	cDialogs := dialKinds(t, rtA, c, "types=post,dialog", "Clara@A")

	before := time.Now().Add(-time.Second)
	send(t, api, a, b, "hello <Boris>")
	var listed []struct{ ID, From, To, Text string }
	call(t, "GET", api+"/dialog/"+a.id+"/list", b.token, nil, &listed)
	if len(listed) != 1 {
		t.Fatalf("list: %+v", listed)
	}
	var pos int64
	for _, sock := range []*rawSocket{bDialogs, aOtherTab} {
		f := sock.next(20 * time.Second)
		if f.Type != "dialog.message" || f.ID != listed[0].ID || f.From != a.id || f.To != b.id || f.Text != "hello <Boris>" ||
			f.Position <= 0 || f.CreatedAt.Before(before) {
			t.Fatalf("%s got %s", sock.name, f.raw)
		}
		var keys map[string]any
		_ = json.Unmarshal(f.raw, &keys)
		if len(keys) != 7 {
			t.Errorf("%s: frame %s, want exactly type, id, from, to, text, position, created_at", sock.name, f.raw)
		}
		pos = f.Position
	}
	// A post of Anna's after the message: Boris's OTUS socket and Clara get it first, so the
	// message never reached them.
	p := post(t, api, a, "a post after the message")
	for _, sock := range []*rawSocket{bOTUS, cDialogs, bDialogs} {
		if f := sock.next(20 * time.Second); f.Type != "post.created" || f.PostID != p || f.Position <= pos {
			t.Fatalf("%s got %s, want the post after the message", sock.name, f.raw)
		}
	}
	send(t, api, b, a, "a reply")
	if f := aOtherTab.next(20 * time.Second); f.Text != "a reply" || f.From != b.id {
		t.Fatalf("%s got %s, want the reply", aOtherTab.name, f.raw)
	}
	if f := bDialogs.next(20 * time.Second); f.Text != "a reply" {
		t.Fatalf("%s got %s, want its own reply", bDialogs.name, f.raw)
	}
	p2 := post(t, api, a, "last")
	for _, sock := range []*rawSocket{bOTUS, cDialogs} {
		if f := sock.next(20 * time.Second); f.PostID != p2 {
			t.Fatalf("%s got %s, want the last post (not the reply)", sock.name, f.raw)
		}
		sock.none()
	}
}

// Resume with since reads posts and messages in one position order, no gap and no duplicate:
// every frame a live socket received, in the same order, from any point on; then live again.
// Replay sends a message again with its original position and bytes, and --type picks it.
func TestDialogResumeAndReplayShareThePostsPositions(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	api, _ := s.start(t, "api")
	rt, _ := s.start(t, "realtime")
	s.startDispatcher(t)
	reader, author, friend := signUp(t, api, "Reader"), signUp(t, api, "Author"), signUp(t, api, "Friend")
	follow(t, api, reader, author)
	live := dialKinds(t, rt, reader, "types=post,dialog", "reader live")
	var frames []anyFrame
	for i := range 4 {
		post(t, api, author, fmt.Sprint("post ", i))
		send(t, api, friend, reader, fmt.Sprint("to reader ", i))
		send(t, api, reader, friend, fmt.Sprint("from reader ", i))
		send(t, api, friend, author, "not the reader's")
	}
	for range 12 {
		frames = append(frames, live.next(20*time.Second))
	}
	positions := make([]int64, len(frames))
	for i, f := range frames {
		positions[i] = f.Position
	}
	if !slices.IsSorted(positions) || len(slices.Compact(slices.Clone(positions))) != 12 {
		t.Fatalf("live positions %v: want 12, increasing", positions)
	}
	for _, from := range []int{0, 1, 5, 11} {
		since := int64(0)
		if from > 0 {
			since = positions[from-1]
		}
		sock := dialKinds(t, rt, reader, "types=post,dialog&since="+strconv.FormatInt(since, 10), fmt.Sprint("resume from ", from))
		for i := from; i < len(frames); i++ {
			if f := sock.next(20 * time.Second); string(f.raw) != string(frames[i].raw) {
				t.Fatalf("resume since %d: frame %d is %s, want %s", since, i, f.raw, frames[i].raw)
			}
		}
		otus := dialKinds(t, rt, reader, "since="+strconv.FormatInt(since, 10), fmt.Sprint("OTUS resume from ", from))
		for i := from; i < len(frames); i++ {
			if frames[i].Type != "post.created" {
				continue
			}
			if f := otus.next(20 * time.Second); string(f.raw) != string(frames[i].raw) {
				t.Fatalf("OTUS resume since %d: %s, want %s", since, f.raw, frames[i].raw)
			}
		}
		// Then live: a message after the resume is the next frame of the one, the next post of
		// the other.
		send(t, api, friend, reader, fmt.Sprint("after resume ", from))
		p := post(t, api, author, fmt.Sprint("after resume ", from))
		if f := sock.next(20 * time.Second); f.Text != fmt.Sprint("after resume ", from) {
			t.Fatalf("after resume since %d: %s", since, f.raw)
		}
		if f := otus.next(20 * time.Second); f.PostID != p {
			t.Fatalf("OTUS after resume since %d: %s, want the post", since, f.raw)
		}
		for range 2 { // the live socket sees both too: later resumes read them as well
			frames = append(frames, live.next(20*time.Second))
		}
	}

	// Replay the first message only (--type): the live socket receives it again, byte for byte.
	msg := frames[1]
	if msg.Type != "dialog.message" {
		t.Fatalf("frame 1 is %s", msg.raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := runCLI(ctx, s.db.URL, "outbox", "replay", "--type", "dialog.message_sent",
		"--from-position", strconv.FormatInt(msg.Position, 10), "--to-position", strconv.FormatInt(msg.Position, 10))
	if r.err != nil || !strings.Contains(r.stdout, "enqueued 1 event") {
		t.Fatalf("replay: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if f := live.next(20 * time.Second); string(f.raw) != string(msg.raw) {
		t.Fatalf("replayed %s, want %s", f.raw, msg.raw)
	}
	// --type post.created over the same position replays nothing.
	r = runCLI(ctx, s.db.URL, "outbox", "replay", "--type", "post.created", "--dry-run",
		"--from-position", strconv.FormatInt(msg.Position, 10), "--to-position", strconv.FormatInt(msg.Position, 10))
	if r.err != nil || !strings.Contains(r.stdout, "0 events") {
		t.Fatalf("replay of posts at a message's position: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
}
