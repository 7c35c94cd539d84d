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
	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	ws "github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/internal/wait"
	"github.com/socialnet/social/outbox"
)

var amqpURL = amqptest.URL()

// env is one realtime instance under test, wired as cmd/social wires it: its own database,
// exchange, presence registration and queue.
type env struct {
	t        testing.TB
	db       *pgtest.DB
	exchange string
	instance string
	tokens   *auth.Tokens
	presence *postgres.Presence
	sub      *amqp.Subscriber
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
	e.instance = "rt-" + uuid.NewString()
	ctx, cancel := context.WithCancel(context.Background())
	var hub *ws.Hub
	e.presence, err = postgres.NewPresence(postgres.PresenceConfig{Pool: db.Pool, InstanceID: e.instance, Lease: 2 * time.Second,
		BeforeRegister: func() { hub.Hold() }, OnLost: func() { hub.Refill() }, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.sub, err = amqp.NewSubscriber(amqp.SubscriberConfig{Dialer: amqp.NewDialer([]string{brokerURL}), Exchange: exchange,
		QueuePrefix: "test.realtime.", OnConnect: func() { hub.Reconnected() }, MinBackoff: 20 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ws.Config{Tokens: tokens, Presence: e.presence, Missed: outbox.NewResume(db.Pool), Logger: log, Registerer: e.reg}
	for _, o := range opts {
		o(&cfg)
	}
	hub, err = ws.NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.hub = hub
	done := make(chan struct{})
	registered := make(chan struct{})
	go func() { defer close(registered); _ = e.presence.Run(ctx) }()
	msgs, err := e.sub.Subscribe(ctx, e.instance)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(done)
		for m := range msgs {
			if err := domain.EachDelivery(m.Payload, hub.Deliver); err != nil {
				log.Warn("bad feed message", slog.Any("err", err))
			}
			m.Ack()
		}
	}()
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
		<-registered
		_ = e.sub.Close()
		amqptest.DeleteExchange(t, exchange)
	})
	wait.For(t, 20*time.Second, "instance ready", func() bool {
		return e.presence.Ready(context.Background()) == nil && e.sub.Ready(context.Background()) == nil
	})

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

// publish sends a frame the way the dispatcher does: a feed message to this instance naming the
// recipients.
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
	msg := domain.AppendDelivery(domain.NewDeliveries(nil), body, recipients)
	err := e.pub.PublishWithContext(context.Background(), e.exchange, e.instance, false, false, amqp091.Publishing{
		ContentType: "application/octet-stream", MessageId: uuid.NewString(), DeliveryMode: amqp091.Transient, Body: msg,
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

// present reports whether user has a presence row on this instance (routing sees them).
func (e *env) present(t testing.TB, user string) bool {
	t.Helper()
	var ok bool
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM presence WHERE user_id = $1 AND instance_id = $2)`,
		user, e.instance).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
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

// deliver hands body to hub for users as the realtime's consumer does: inside a feed message,
// through domain.EachDelivery.
func deliver(tb testing.TB, hub *ws.Hub, body []byte, users ...string) {
	tb.Helper()
	if err := domain.EachDelivery(domain.AppendDelivery(domain.NewDeliveries(nil), body, users), hub.Deliver); err != nil {
		tb.Fatal(err)
	}
}
