package websocket

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestWriterExitsWhenDrainedAndKeepsOrder feeds a socket in bursts: each burst starts a writer
// that must deliver its frames after the previous ones and exit once the queue is empty (an idle
// socket keeps no goroutine of ours and no queue).
func TestWriterExitsWhenDrainedAndKeepsOrder(t *testing.T) {
	t.Parallel()
	h := &Hub{cfg: Config{SendQueue: 64, WriteTimeout: 5 * time.Second}, log: slog.New(slog.DiscardHandler),
		metrics: newMetrics(nil), users: make(map[string][]*conn), closing: make(chan struct{})}
	accepted := make(chan *conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(smallBuffers{w}, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		ws.CloseRead(context.Background())
		accepted <- &conn{h: h, user: "u", ws: ws}
		// The handler returns: the socket lives on without it, as in ServeHTTP.
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseNow()
	c := <-accepted

	idle := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.writing && c.queue == nil
	}
	pos := int64(0)
	for burst := range 30 {
		n := 1 + burst%7
		for range n {
			pos++
			body, _ := json.Marshal(frameMeta{Position: pos})
			c.enqueue(&frame{position: pos, body: body, live: true})
		}
		for want := pos - int64(n) + 1; want <= pos; want++ {
			_, b, err := client.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var m frameMeta
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m.Position != want {
				t.Fatalf("burst %d: got position %d, want %d", burst, m.Position, want)
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for !idle() {
			if time.Now().After(deadline) {
				t.Fatalf("burst %d: the writer did not exit after draining", burst)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
