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
	// ended counts sockets the server closed (or that broke) while the fleet was still reading.
	ended      atomic.Int64
	centrifugo bool // the Centrifugo client protocol (JSON, protocol v2) instead of ours
	lines      bool // ours with ?batch=lines: a message may carry several frames, one per line
	cancel     context.CancelFunc
	wg         sync.WaitGroup
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

func connectFleet(ctx context.Context, cfg loadConfig, wsURLs []string, w *world) (*fleet, error) {
	f := &fleet{centrifugo: cfg.Proto == "centrifugo", lines: cfg.Proto == "lines"}
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
			if f.lines {
				u += "?batch=lines"
			}
			opts := &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + w.tokens[s.user]}}}
			if f.centrifugo {
				u = strings.Replace(wsURLs[s.instance], "http", "ws", 1) + "/connection/websocket"
				opts = nil
			}
			// Generous: each first socket of a user waits for its presence write, slow on a busy database.
			dctx, cancel := context.WithTimeout(gctx, 2*time.Minute)
			defer cancel()
			c, resp, err := websocket.Dial(dctx, u, opts)
			if err != nil {
				status := 0
				if resp != nil {
					status = resp.StatusCode
				}
				return fmt.Errorf("dial %s (user %d, status %d): %w", u, s.user, status, err)
			}
			c.SetReadLimit(1 << 20)
			s.ws = c
			if f.centrifugo {
				if err := centrifugoConnect(dctx, c, cfg, w.ids[s.user]); err != nil {
					return fmt.Errorf("centrifugo connect (user %d): %w", s.user, err)
				}
			}
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

var postIDKey = []byte(`"postId"`)

// postIDOf finds the postId of one frame with a byte search, not a JSON decode (to keep the
// client's share of the 2 CPUs small); it allows spaces around the colon (PostgreSQL's JSON
// output, which the Centrifugo runs forward as is).
func postIDOf(b []byte) (uuid.UUID, bool) {
	i := bytes.Index(b, postIDKey)
	if i < 0 {
		return uuid.UUID{}, false
	}
	b = bytes.TrimLeft(b[i+len(postIDKey):], " ")
	if len(b) == 0 || b[0] != ':' {
		return uuid.UUID{}, false
	}
	b = bytes.TrimLeft(b[1:], " ")
	if len(b) < 38 || b[0] != '"' {
		return uuid.UUID{}, false
	}
	id, err := uuid.ParseBytes(b[1:37])
	return id, err == nil
}

// read records every frame until the socket or the fleet closes. A Centrifugo message may carry
// several replies, one per line; its pings ({}) are answered with a pong ({}).
func (f *fleet) read(ctx context.Context, s *sock) {
	var buf bytes.Buffer
	for {
		_, r, err := s.ws.Reader(ctx)
		if err != nil {
			if ctx.Err() == nil {
				f.ended.Add(1)
			}
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			if ctx.Err() == nil {
				f.ended.Add(1)
			}
			return
		}
		at := time.Now().UnixNano()
		b := buf.Bytes()
		if f.lines {
			for line := range bytes.SplitSeq(b, []byte("\n")) {
				f.record(s, line, at)
			}
			continue
		}
		if !f.centrifugo {
			f.record(s, b, at)
			continue
		}
		for line := range bytes.Lines(b) {
			line = bytes.TrimSpace(line)
			if len(line) == 2 && line[0] == '{' && line[1] == '}' {
				_ = s.ws.Write(ctx, websocket.MessageText, line) // pong
				continue
			}
			if bytes.Contains(line, []byte(`"push"`)) {
				f.record(s, line, at)
			}
		}
	}
}

func (f *fleet) record(s *sock, b []byte, at int64) {
	id, ok := postIDOf(b)
	s.mu.Lock()
	if ok {
		s.frames = append(s.frames, frameRec{post: id, at: at})
	} else {
		s.bad++
	}
	s.mu.Unlock()
	f.received.Add(1)
}

// take returns and forgets the frames s received so far.
func (s *sock) take() ([]frameRec, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fr, bad := s.frames, s.bad
	s.frames, s.bad = nil, 0
	return fr, bad
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
