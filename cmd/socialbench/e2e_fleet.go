package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// fleet is every benchmark websocket: cfg.Connected users × cfg.Tabs, spread round-robin over the
// realtime instances. Each socket records which post each frame carried and when it arrived.
type fleet struct {
	socks    []*sock
	received atomic.Int64 // frames received by all sockets
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

type sock struct {
	user     int32
	instance int
	ws       *websocket.Conn
	mu       sync.Mutex
	frames   []frameRec
	bad      int // frames without a parseable postId
}

// frameRec is one received frame: the post it carried and the arrival time (unix ns).
type frameRec struct {
	post uuid.UUID
	at   int64
}

func connectFleet(ctx context.Context, cfg e2eConfig, wsURLs []string, w *world) (*fleet, error) {
	f := &fleet{}
	for u, on := range w.connected {
		if !on {
			continue
		}
		for range cfg.Tabs {
			f.socks = append(f.socks, &sock{user: int32(u), instance: len(f.socks) % len(wsURLs)})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, s := range f.socks {
		g.Go(func() error {
			u := strings.Replace(wsURLs[s.instance], "http", "ws", 1) + "/post/feed/posted"
			// Generous: each first socket of a user waits for a queue.bind, slow on a busy broker.
			dctx, cancel := context.WithTimeout(gctx, 2*time.Minute)
			defer cancel()
			c, resp, err := websocket.Dial(dctx, u, &websocket.DialOptions{
				HTTPHeader: http.Header{"Authorization": {"Bearer " + w.tokens[s.user]}},
			})
			if err != nil {
				status := 0
				if resp != nil {
					status = resp.StatusCode
				}
				return fmt.Errorf("dial %s (user %d, status %d): %w", u, s.user, status, err)
			}
			c.SetReadLimit(1 << 20)
			s.ws = c
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		f.closeSocks()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for _, s := range f.socks {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.read(rctx, s)
		}()
	}
	return f, nil
}

var postIDKey = []byte(`"postId":"`)

// read records every frame until the socket or the fleet closes. Parsing is a byte search for
// the postId, not a JSON decode, to keep the client's share of the 2 CPUs small.
func (f *fleet) read(ctx context.Context, s *sock) {
	var buf bytes.Buffer
	for {
		_, r, err := s.ws.Reader(ctx)
		if err != nil {
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return
		}
		at := time.Now().UnixNano()
		b := buf.Bytes()
		var id uuid.UUID
		i := bytes.Index(b, postIDKey)
		ok := i >= 0 && len(b) >= i+len(postIDKey)+36
		if ok {
			id, err = uuid.ParseBytes(b[i+len(postIDKey) : i+len(postIDKey)+36])
			ok = err == nil
		}
		s.mu.Lock()
		if ok {
			s.frames = append(s.frames, frameRec{post: id, at: at})
		} else {
			s.bad++
		}
		s.mu.Unlock()
		f.received.Add(1)
	}
}

// take returns and forgets the frames s received so far.
func (s *sock) take() ([]frameRec, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fr, bad := s.frames, s.bad
	s.frames, s.bad = nil, 0
	return fr, bad
}

// perInstance counts the sockets of each realtime instance.
func (f *fleet) perInstance(n int) []int {
	out := make([]int, n)
	for _, s := range f.socks {
		out[s.instance]++
	}
	return out
}

func (f *fleet) closeSocks() {
	for _, s := range f.socks {
		if s.ws != nil {
			s.ws.CloseNow()
		}
	}
}

func (f *fleet) close() {
	if f.cancel != nil {
		f.cancel()
	}
	f.closeSocks()
	f.wg.Wait()
}
