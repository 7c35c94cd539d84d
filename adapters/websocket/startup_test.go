package websocket_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/auth"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	ws "github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

// TestSocketOpenedAsTheConsumerBecomesReadyIsNotCut holds the consumer between its restore and
// the hub's "reconnected" step (OnReconnect blocks until the test lets it go), which is where a
// loaded machine descheduled it for long enough in issue #11. A client that opens its socket in
// that window and then receives a frame must keep its socket: the contract is that a client gets
// every post created after its socket opened, and one that has seen no frame has no position to
// resume from. Failure mode guarded: Ready turned true before the hub's 1012 sweep, so sockets
// bound and upgraded on the NEW session were cut by the sweep meant for the old one.
func TestSocketOpenedAsTheConsumerBecomesReadyIsNotCut(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	exchange := "test.feed." + uuid.NewString()
	tokens, err := auth.NewTokens(strings.Repeat("s", 32), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var (
		hub      *ws.Hub
		once     sync.Once
		entered  = make(chan struct{})
		release  = make(chan struct{})
		released sync.Once
	)
	consumer, err := amqp.NewConsumer(amqp.ConsumerConfig{
		Dialer:      amqp.NewDialer([]string{amqpURL}),
		Exchange:    exchange,
		QueuePrefix: "test.realtime.",
		Handle:      func(d amqp.Delivery) { hub.Deliver(d.Recipients, d.Body) },
		OnReconnect: func() {
			once.Do(func() { close(entered); <-release })
			hub.Reconnected()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	hub, err = ws.NewHub(ws.Config{Tokens: tokens, Binder: consumer, Missed: outbox.NewResume(db.Pool),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = consumer.Run(ctx) }()
	srv := httptest.NewServer(hub)
	letGo := func() { released.Do(func() { close(release) }) }
	t.Cleanup(func() {
		letGo()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = hub.Shutdown(sctx)
		srv.Close()
		cancel()
		<-done
		amqptest.DeleteExchange(t, exchange)
	})
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("consumer did not connect")
	}

	e := &env{t: t, db: db, exchange: exchange, tokens: tokens, srv: srv}
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if e.pub, err = conn.Channel(); err != nil {
		t.Fatal(err)
	}
	user := uuid.NewString()
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	c, res, err := websocket.Dial(dctx, e.wsURL(""), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + e.token(t, user)}}})
	var cl *client
	if err == nil {
		// Opened inside the window: it must deliver what is published from now on.
		cl = &client{t: t, c: c, frames: make(chan domain.FeedFrame, 16), done: make(chan struct{})}
		go cl.readLoop()
		t.Cleanup(func() { c.CloseNow() })
	} else if res == nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial inside the window: %v, want a socket that delivers, or 503", err)
	}
	letGo()
	waitFor(t, 20*time.Second, "consumer ready", func() bool { return consumer.Ready(context.Background()) == nil })
	if cl == nil {
		cl = e.dial(t, user, "") // refused in the window: the client retries once the instance is ready
	}
	want := frameAt(1, uuid.NewString())
	e.publish(t, want, user)
	select {
	case f := <-cl.frames:
		if f.PostID != want.PostID {
			t.Fatalf("got %+v, want post %s", f, want.PostID)
		}
	case <-cl.done:
		t.Fatalf("socket cut (close status %d) before the frame published after it opened", websocket.CloseStatus(cl.err))
	case <-time.After(15 * time.Second):
		t.Fatal("no frame within 15s")
	}
}
