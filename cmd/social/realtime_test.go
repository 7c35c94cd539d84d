package main

import (
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestSeedScenarioTwoRealtimeInstances is the seed's scenario with every real piece: the REST API,
// the dispatcher (outbox relay + publisher), RabbitMQ, and two realtime instances.
func TestSeedScenarioTwoRealtimeInstances(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	api, _ := s.start(t, "api")
	rtA, _ := s.start(t, "realtime")
	rtB, _ := s.start(t, "realtime")
	s.startDispatcher(t)

	u1, u2, u3 := signUp(t, api, "One"), signUp(t, api, "Two"), signUp(t, api, "Three")
	follow(t, api, u1, u2) // 1 and 2 are friends both ways; 3 is nobody's friend
	follow(t, api, u2, u1)

	one := dialFeed(t, rtA, u1, "user1@A")
	twoA, twoB := dialFeed(t, rtA, u2, "user2@A"), dialFeed(t, rtB, u2, "user2@B")
	threeA, threeB := dialFeed(t, rtA, u3, "user3@A"), dialFeed(t, rtB, u3, "user3@B")

	p1 := post(t, api, u1, "hello from one")
	var pos int64
	for _, sock := range []*feedSocket{twoA, twoB} {
		f := sock.next(20 * time.Second)
		if f.PostID != p1 || f.PostText != "hello from one" || f.AuthorUserID != u1.id || f.Type != "post.created" || f.Position <= 0 {
			t.Fatalf("%s got %+v", sock, f)
		}
		pos = f.Position
	}

	post(t, api, u3, "nobody follows three")
	// Later frames on the same instances and sockets prove the earlier one was not delivered.
	p2 := post(t, api, u1, "second from one")
	for _, sock := range []*feedSocket{twoA, twoB} {
		if f := sock.next(20 * time.Second); f.PostID != p2 || f.Position <= pos {
			t.Fatalf("%s got %+v, want the second post of user 1 (three's post must not arrive)", sock, f)
		}
	}
	p3 := post(t, api, u2, "from two")
	if f := one.next(20 * time.Second); f.PostID != p3 {
		t.Fatalf("user1 got %+v, want user 2's post", f)
	}
	for _, sock := range []*feedSocket{one, twoA, twoB, threeA, threeB} {
		sock.none()
	}
}

func TestRealtimeShutdownClosesSocketsWith1001(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	api, _ := s.start(t, "api")
	rt, stop := s.start(t, "realtime")
	u := signUp(t, api, "Leaving")
	sock := dialFeed(t, rt, u, "user")
	stop()
	if got := sock.closeStatus(10 * time.Second); got != websocket.StatusGoingAway {
		t.Fatalf("close status %d, want 1001", got)
	}
}

// TestAllServesTheWebsocketOnTheAPIAddress: in `social all` the feed shares HTTP_ADDR with the API,
// behind the API's middleware (request timeout included, which must not end the socket).
func TestAllServesTheWebsocketOnTheAPIAddress(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	// Short enough to outlive below, long enough for the post's insert under the whole suite's
	// load (at 300 ms it once answered 503).
	s.extra = map[string]string{"REQUEST_TIMEOUT": "2s"}
	base, _ := s.start(t, "all")
	author, reader := signUp(t, base, "Author"), signUp(t, base, "Reader")
	follow(t, base, reader, author)
	sock := dialFeed(t, base, reader, "reader")
	// Outlive the API's request timeout: the socket must not be bound to the request context.
	time.Sleep(2500 * time.Millisecond)
	id := post(t, base, author, "via all")
	if f := sock.next(20 * time.Second); f.PostID != id {
		t.Fatalf("got %+v", f)
	}
}
