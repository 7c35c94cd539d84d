package websocket_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/auth"
	ws "github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/domain"
)

// fakeMissed is the resume port (ws.MissedFrames) over frames in memory: no database.
type fakeMissed struct {
	mu     sync.Mutex
	frames [][]byte // in position order
	pos    []int64
	calls  []int64 // the after of each call
}

func (f *fakeMissed) Missed(_ context.Context, _ string, after int64, limit, _ int, _ []string) ([][]byte, int64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, after)
	var out [][]byte
	last := after
	for i, p := range f.pos {
		if p > after && len(out) < limit {
			out = append(out, f.frames[i])
			last = p
		}
	}
	return out, last, len(out) == limit, nil
}

// fakeMissedWith holds post frames at positions 1..n, each with text.
func fakeMissedWith(n int, text string) *fakeMissed {
	f := &fakeMissed{}
	for p := int64(1); p <= int64(n); p++ {
		b, _ := json.Marshal(domain.FeedFrame{PostID: "p", PostText: text, Type: domain.EventPostCreated, Position: p, CreatedAt: time.Now()})
		f.frames, f.pos = append(f.frames, b), append(f.pos, p)
	}
	return f
}

// Gap is not used by these tests (no broker reconnect): it reads nothing.
func (f *fakeMissed) Gap(_ context.Context, _ []string, after int64, _ int) ([]byte, int64, bool, error) {
	return domain.NewDeliveries(nil), after, false, nil
}

func (f *fakeMissed) Newest(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pos) == 0 {
		return 0, nil
	}
	return f.pos[len(f.pos)-1], nil
}

// fakePresence joins at once.
type fakePresence struct{}

func (fakePresence) Join(context.Context, string) error { return nil }
func (fakePresence) Leave(string)                       {}

// The hub pages through the resume port from since, sends its frames in order before live ones,
// and drops live frames at or below the last resumed position.
func TestHubResumesThroughItsPortPageByPage(t *testing.T) {
	t.Parallel()
	missed := fakeMissedWith(8, "")
	tokens, err := auth.NewTokens(strings.Repeat("s", 32), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := ws.NewHub(ws.Config{Tokens: tokens, Presence: fakePresence{}, Missed: missed, ResumePage: 3})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, tokens: tokens, srv: httptest.NewServer(hub)}
	t.Cleanup(e.srv.Close)
	user := uuid.NewString()
	c := e.dial(t, user, "since=2")
	for want := int64(3); want <= 8; want++ {
		if f := c.next(5 * time.Second); f.Position != want {
			t.Fatalf("frame at %d, want %d", f.Position, want)
		}
	}
	live := func(p int64) {
		b, _ := json.Marshal(domain.FeedFrame{PostID: "p", Type: domain.EventPostCreated, Position: p, CreatedAt: time.Now()})
		deliver(t, hub, b, user)
	}
	live(8) // already resumed
	live(9)
	if f := c.next(5 * time.Second); f.Position != 9 {
		t.Fatalf("live frame at %d, want 9 (8 was resumed)", f.Position)
	}
	expectNone(t, c)
	missed.mu.Lock()
	defer missed.mu.Unlock()
	if got := missed.calls; len(got) != 3 || got[0] != 2 || got[1] != 5 || got[2] != 8 {
		t.Errorf("port called after %v, want pages after 2, 5, 8", got)
	}
}
