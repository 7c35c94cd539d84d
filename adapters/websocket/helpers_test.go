package websocket_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/auth"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	ws "github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

var amqpURL = amqptest.URL()

// env is one realtime instance under test: its own database, exchange and queue.
type env struct {
	t        testing.TB
	db       *pgtest.DB
	exchange string
	tokens   *auth.Tokens
	consumer *amqp.Consumer
	hub      *ws.Hub
	srv      *httptest.Server
	reg      *prometheus.Registry
	pub      *amqp091.Channel
}

type envOpt func(*ws.Config)

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	return newEnvWith(t, pgtest.New(t), "test.feed."+uuid.NewString(), slog.New(slog.DiscardHandler), opts...)
}

func newEnvWith(t testing.TB, db *pgtest.DB, exchange string, log *slog.Logger, opts ...envOpt) *env {
	t.Helper()
	return newEnvVia(t, db, exchange, log, amqpURL, opts...)
}

// newEnvVia connects the consumer to brokerURL (a tcpProxy in the reconnect test).
func newEnvVia(t testing.TB, db *pgtest.DB, exchange string, log *slog.Logger, brokerURL string, opts ...envOpt) *env {
	t.Helper()
	tokens, err := auth.NewTokens(strings.Repeat("s", 32), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, exchange: exchange, tokens: tokens, reg: prometheus.NewRegistry()}
	ctx, cancel := context.WithCancel(context.Background())
	var hub *ws.Hub
	e.consumer, err = amqp.NewConsumer(amqp.ConsumerConfig{
		Dialer:      amqp.NewDialer([]string{brokerURL}),
		MinBackoff:  20 * time.Millisecond,
		Exchange:    exchange,
		QueuePrefix: "test.realtime.",
		Handle:      func(d amqp.Delivery) { hub.Deliver(d.Recipients, d.Body) },
		OnReconnect: func() { hub.Reconnected() },
		Logger:      log,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ws.Config{Tokens: tokens, Binder: e.consumer, Missed: outbox.NewResume(db.Pool), Logger: log, Registerer: e.reg}
	for _, o := range opts {
		o(&cfg)
	}
	hub, err = ws.NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.hub = hub
	done := make(chan struct{})
	go func() { defer close(done); _ = e.consumer.Run(ctx) }()
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/post/feed/posted" {
			hub.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = hub.Shutdown(sctx)
		e.srv.Close()
		cancel()
		<-done
		amqptest.DeleteExchange(t, exchange)
	})
	waitFor(t, 20*time.Second, "consumer ready", func() bool { return e.consumer.Ready(context.Background()) == nil })

	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if e.pub, err = conn.Channel(); err != nil {
		t.Fatal(err)
	}
	return e
}

// publish sends a frame the way the dispatcher does: routing key = first recipient, CC = the rest.
func (e *env) publish(t testing.TB, f domain.FeedFrame, recipients ...string) {
	t.Helper()
	body, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	e.publishRaw(t, body, recipients...)
}

func (e *env) publishRaw(t testing.TB, body []byte, recipients ...string) {
	t.Helper()
	var headers amqp091.Table
	if len(recipients) > 1 {
		cc := make([]interface{}, 0, len(recipients)-1)
		for _, r := range recipients[1:] {
			cc = append(cc, r)
		}
		headers = amqp091.Table{amqp.HeaderCC: cc}
	}
	err := e.pub.PublishWithContext(context.Background(), e.exchange, recipients[0], false, false, amqp091.Publishing{
		Headers: headers, ContentType: "application/json", MessageId: uuid.NewString(),
		DeliveryMode: amqp091.Transient, Body: body,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func frameAt(pos int64, author string) domain.FeedFrame {
	return domain.FeedFrame{PostID: uuid.NewString(), PostText: "post " + author[:4], AuthorUserID: author,
		Type: domain.EventPostCreated, Position: pos, CreatedAt: time.Now().UTC()}
}

func (e *env) wsURL(query string) string {
	u := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/post/feed/posted"
	if query != "" {
		u += "?" + query
	}
	return u
}

func (e *env) token(t testing.TB, user string) string {
	t.Helper()
	tok, err := e.tokens.Issue(user)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dial connects as user with the Authorization header.
func (e *env) dial(t testing.TB, user, query string) *client {
	t.Helper()
	return e.dialWith(t, e.wsURL(query), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + e.token(t, user)}}})
}

func (e *env) dialWith(t testing.TB, url string, opts *websocket.DialOptions) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	c.SetReadLimit(1 << 20)
	cl := &client{t: t, c: c, frames: make(chan domain.FeedFrame, 10000), done: make(chan struct{})}
	go cl.readLoop()
	t.Cleanup(func() { c.CloseNow() })
	return cl
}

// client reads frames in the background.
type client struct {
	t      testing.TB
	c      *websocket.Conn
	frames chan domain.FeedFrame
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		_, b, err := c.c.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		var f domain.FeedFrame
		if err := json.Unmarshal(b, &f); err != nil {
			c.t.Errorf("bad frame %q: %v", b, err)
			continue
		}
		c.frames <- f
	}
}

// next returns the next frame or fails after d.
func (c *client) next(d time.Duration) domain.FeedFrame {
	c.t.Helper()
	select {
	case f := <-c.frames:
		return f
	case <-time.After(d):
		c.t.Fatalf("no frame within %s", d)
	}
	return domain.FeedFrame{}
}

// closeStatus waits for the socket to end and returns its close code (-1: no close frame).
func (c *client) closeStatus(d time.Duration) websocket.StatusCode {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		c.t.Fatalf("socket still open after %s", d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return websocket.CloseStatus(c.err)
}

// expectNone checks that no frame has arrived. Call it after a later frame reached the same
// socket: the queue and the socket are FIFO, so an earlier frame would have come first.
func expectNone(t testing.TB, c *client) {
	t.Helper()
	select {
	case f := <-c.frames:
		t.Fatalf("unexpected frame %+v", f)
	default:
	}
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bound reports whether a probe publish to user is routed (mandatory flag; unroutable → returned).
func (e *env) bound(t testing.TB, user string) bool {
	t.Helper()
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	returns := ch.NotifyReturn(make(chan amqp091.Return, 1))
	// A probe body that the hub drops as undecodable: it never reaches a socket.
	dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), e.exchange, user, true, false,
		amqp091.Publishing{Body: []byte("probe"), DeliveryMode: amqp091.Transient})
	if err != nil {
		t.Fatal(err)
	}
	// The broker sends basic.return before the ack of an unroutable mandatory message.
	if !dc.Wait() {
		t.Fatal("probe nacked")
	}
	select {
	case <-returns:
		return false
	default:
		return true
	}
}

// metric returns the value of a counter or gauge registered by the hub (0 if absent).
func (e *env) metric(name string) float64 {
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
