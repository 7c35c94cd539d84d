package websocket_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/socialnet/social/domain"
)

// TestAThousandPostBurstCutsNoReadingSocket (issue #15): 1,000 posts by one author reach the
// instance as fast as the broker delivers them (a burst, or the backlog flush after a dispatcher
// outage), each one message naming all 100 followers connected here. Every follower's client
// reads at its normal pace (decoding each frame as it comes) and keeps its socket: all 1,000
// frames in order, nobody closed with 1013. The old 256-frame bound closed such sockets as soon
// as one fell 256 frames behind, which a burst of 1,000 makes them.
func TestAThousandPostBurstCutsNoReadingSocket(t *testing.T) {
	t.Parallel()
	const posts, followers = 1000, 100
	e := newEnv(t)
	users := make([]string, followers)
	clients := make([]*client, followers)
	for i := range users {
		users[i] = uuid.NewString()
		clients[i] = e.dial(t, users[i], "")
	}
	author := uuid.NewString()
	text := strings.Repeat("burst ", 35) // a ~300-byte frame, as a typical post's
	start := time.Now()
	for p := range posts {
		f := frameAt(int64(p+1), author)
		f.PostText = text
		e.publish(t, f, users...)
	}
	published := time.Since(start)
	// How far behind the readers were when the last post was out: the hub queued the rest.
	behind := 0
	for _, c := range clients {
		behind = max(behind, posts-len(c.frames))
	}
	for i, c := range clients {
		for want := int64(1); want <= posts; want++ {
			var f domain.FeedFrame
			select {
			case f = <-c.frames:
			case <-c.done:
				c.mu.Lock()
				err := c.err
				c.mu.Unlock()
				t.Fatalf("follower %d's socket ended after %d of %d frames: %v", i, want-1, posts, err)
			case <-time.After(60 * time.Second):
				t.Fatalf("follower %d: frame %d did not come", i, want)
			}
			if f.Position != want {
				t.Fatalf("follower %d: got position %d, want %d", i, f.Position, want)
			}
		}
	}
	t.Logf("%d posts × %d followers published in %s (the slowest reader %d frames behind then), all read after %s; %v frames in %v write(2)",
		posts, followers, published.Round(time.Millisecond), behind, time.Since(start).Round(time.Millisecond),
		e.metric("social_ws_frames_sent_total"), e.metric("social_ws_writes_total"))
	if n := e.metric("social_ws_slow_client_disconnects_total"); n != 0 {
		t.Fatalf("%v sockets closed as too slow", n)
	}
	if n := e.hub.Connections(); n != followers {
		t.Fatalf("%d sockets open after the burst, want %d", n, followers)
	}
}
