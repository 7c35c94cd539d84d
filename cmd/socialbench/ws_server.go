package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	amqpadapter "github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/auth"
	ws "github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/cmd/socialbench/internal/bench"
	"github.com/socialnet/social/domain"
)

// wsServerFlags configure the child process that holds the sockets (so its RSS is only theirs).
type wsServerFlags struct {
	kind     string // "ours" or "baseline"
	amqpURL  string
	exchange string
	secret   string
}

// serveWS runs one server in this (child) process: it prints its address on stdout and serves
// /post/feed/posted, /stats (sockets and goroutines; ?gc=1 returns freed memory to the OS first,
// for both servers alike) and, for the baseline, /emit (frames from an in-process channel).
func serveWS(ctx context.Context, f wsServerFlags) error {
	bench.RaiseNoFile()
	mux := http.NewServeMux()
	var count func() int
	switch f.kind {
	case "ours":
		tokens, err := auth.NewTokens(f.secret, time.Hour)
		if err != nil {
			return err
		}
		urls, err := amqpadapter.ParseURLs(f.amqpURL)
		if err != nil {
			return err
		}
		// No database here: every user counts as present (the frames come straight from the
		// parent, addressed to this instance), and nothing is missed, so nothing is refilled.
		// Every client comes from loopback: the per-address bound would refuse the 1,001st.
		hub, err := ws.NewHub(ws.Config{Tokens: tokens, Presence: noPresence{}, MaxSocketsPerAddress: math.MaxInt})
		if err != nil {
			return err
		}
		connected := make(chan struct{})
		var once sync.Once
		sub, err := amqpadapter.NewSubscriber(amqpadapter.SubscriberConfig{
			Dialer: amqpadapter.NewDialer(urls), Exchange: f.exchange, QueuePrefix: "bench.realtime.",
			OnConnect: func() { once.Do(func() { close(connected) }) },
			Logger:    slog.New(slog.DiscardHandler),
		})
		if err != nil {
			return err
		}
		defer sub.Close()
		msgs, err := sub.Subscribe(ctx, wsInstanceID)
		if err != nil {
			return err
		}
		go func() {
			for msg := range msgs {
				_ = domain.EachDelivery(msg.Payload, hub.Deliver)
				msg.Ack()
			}
		}()
		select {
		case <-connected:
		case <-ctx.Done():
			return ctx.Err()
		}
		mux.Handle("/post/feed/posted", hub)
		count = hub.Connections
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = hub.Shutdown(sctx)
		}()
	case "baseline":
		b := newBareServer()
		go b.dispatch(ctx)
		mux.HandleFunc("/post/feed/posted", b.serve)
		mux.HandleFunc("/emit", b.emit)
		count = b.count
	default:
		return fmt.Errorf("unknown server kind %q", f.kind)
	}
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
			debug.FreeOSMemory()
		}
		_ = json.NewEncoder(w).Encode(map[string]int{"connections": count(), "goroutines": runtime.NumGoroutine()})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// wsInstanceID is the realtime instance id of ours in the ws benchmark: its queue's one binding.
const wsInstanceID = "bench-ws"

// noPresence is a Presence for a hub without a database: every Join succeeds at once.
type noPresence struct{}

func (noPresence) Join(context.Context, string) error { return nil }
func (noPresence) Leave(string)                       {}

// bareServer is the baseline: coder/websocket with nothing of ours — no auth, no broker, no
// metrics — one send channel and writer per socket, frames from an in-process channel.
type bareServer struct {
	mu     sync.RWMutex
	users  map[string]map[chan []byte]struct{}
	frames chan bareFrame
}

type bareFrame struct {
	user string
	body []byte
}

func newBareServer() *bareServer {
	return &bareServer{users: make(map[string]map[chan []byte]struct{}), frames: make(chan bareFrame, 1024)}
}

func (b *bareServer) count() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n := 0
	for _, s := range b.users {
		n += len(s)
	}
	return n
}

func (b *bareServer) serve(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := c.CloseRead(context.Background())
	send := make(chan []byte, 256)
	b.mu.Lock()
	if b.users[user] == nil {
		b.users[user] = make(map[chan []byte]struct{})
	}
	b.users[user][send] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.users[user], send)
		if len(b.users[user]) == 0 {
			delete(b.users, user)
		}
		b.mu.Unlock()
	}()
	for {
		select {
		case body := <-send:
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.Write(wctx, websocket.MessageText, body)
			cancel()
			if err != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func (b *bareServer) dispatch(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-b.frames:
			b.mu.RLock()
			for s := range b.users[f.user] {
				select {
				case s <- f.body:
				default:
				}
			}
			b.mu.RUnlock()
		}
	}
}

// emit produces n frames at rate per second for users u0..u(users-1) round robin, each encoded at
// emission with created_at = now (what the dispatcher does with the event time).
func (b *bareServer) emit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, _ := strconv.Atoi(q.Get("n"))
	rate, _ := strconv.Atoi(q.Get("rate"))
	var users []string
	_ = json.NewDecoder(r.Body).Decode(&users)
	go func() {
		start := time.Now()
		for i := range n {
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
			body, _ := json.Marshal(benchFrame(int64(i + 1)))
			b.frames <- bareFrame{user: users[i%len(users)], body: body}
		}
	}()
	w.WriteHeader(http.StatusAccepted)
}

func benchFrame(pos int64) domain.FeedFrame {
	return domain.FeedFrame{PostID: "01937a1e-0000-7000-8000-000000000000", PostText: "a post of about a hundred characters, which is what most posts on a social network look like ok",
		AuthorUserID: "01937a1e-0000-7000-8000-000000000001", Type: domain.EventPostCreated, Position: pos, CreatedAt: time.Now().UTC()}
}
