package outbox_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

// env is one test's database, exchange and broker connection for consumers.
type env struct {
	t        testing.TB
	db       *pgtest.DB
	exchange string
	conn     *amqp091.Connection
	posts    *postgres.PostService
}

func newEnv(t testing.TB) *env {
	t.Helper()
	db := pgtest.New(t)
	conn, err := amqp091.Dial(amqptest.URL())
	if err != nil {
		t.Fatalf("dial rabbitmq: %v (is it running?)", err)
	}
	e := &env{t: t, db: db, exchange: "test.feed." + uuid.NewString(), conn: conn, posts: postgres.NewPostService(db.Pool)}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(e.exchange, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(e.exchange, false, false)
		}
		_ = conn.Close()
	})
	return e
}

// users inserts n users by bulk SQL and returns their ids.
func (e *env) users(n int) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
	}
	e.db.Exec(e.t, `INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
		SELECT id, 'F', 'S', '2000-01-01', '', 'City', 'x', 1 FROM unnest($1::uuid[]) AS id`, ids)
	return ids
}

// follow makes every follower follow author (bulk SQL; FriendService is exercised elsewhere).
func (e *env) follow(author string, followers []string) {
	e.t.Helper()
	e.db.Exec(e.t, `INSERT INTO friendships (user_id, friend_id) SELECT f, $1 FROM unnest($2::uuid[]) AS f`, author, followers)
}

// post creates a post through the real PostService (event + outbox row in one transaction).
func (e *env) post(author, text string) domain.Post {
	e.t.Helper()
	p, err := e.posts.Create(context.Background(), author, text)
	if err != nil {
		e.t.Fatalf("create post: %v", err)
	}
	return p
}

// publisher returns a Publisher on urls (the live broker by default), closed at cleanup.
func (e *env) publisher(urls ...string) *amqp.Publisher {
	e.t.Helper()
	if len(urls) == 0 {
		urls = []string{amqptest.URL()}
	}
	d := amqp.NewDialer(urls)
	d.Timeout = 2 * time.Second
	p, err := amqp.NewPublisher(amqp.PublisherConfig{Dialer: d, Exchange: e.exchange, ReconnectBackoffMin: 20 * time.Millisecond,
		ReconnectBackoffMax: 200 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = p.Close() })
	return p
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// relay starts a relay with test-friendly timings; it stops at cleanup (or when the returned
// cancel is called) and the test waits for it.
func (e *env) relay(cfg outbox.Config) (cancel func()) {
	e.t.Helper()
	if cfg.Pool == nil {
		cfg.Pool = e.db.Pool
	}
	if cfg.Publisher == nil {
		cfg.Publisher = e.publisher()
	}
	if cfg.Refused == nil {
		cfg.Refused = amqp.IsRefused
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 200 * time.Millisecond
	}
	if cfg.LeaderRetryInterval == 0 {
		cfg.LeaderRetryInterval = 100 * time.Millisecond
	}
	if cfg.ErrorBackoffMax == 0 {
		cfg.ErrorBackoffMin, cfg.ErrorBackoffMax = 20*time.Millisecond, 200*time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	r, err := outbox.NewRelay(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancelCtx := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(ctx); err != nil {
			e.t.Errorf("relay: %v", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancelCtx()
			<-done
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// online registers instance with a live lease and the users as connected to it (what a realtime
// instance's Presence writes).
func (e *env) online(instance string, users ...string) {
	e.t.Helper()
	e.db.Exec(e.t, `INSERT INTO realtime_instances (id, lease_until) VALUES ($1, now() + interval '1 hour') ON CONFLICT (id) DO NOTHING`, instance)
	e.db.Exec(e.t, `INSERT INTO presence (user_id, instance_id) SELECT u, $1 FROM unnest($2::uuid[]) AS u ON CONFLICT DO NOTHING`, instance, users)
}

// delivery is one frame of a feed message received by a test consumer, with its recipients.
type delivery struct {
	instance string
	to       []string
	frame    domain.FeedFrame
	body     []byte
}

// recipients are the users the frame is for on its instance.
func (d delivery) recipients() []string { return d.to }

// consumer is one instance's exclusive queue, bound with the instance's id as the realtime binds
// it; it collects the deliveries of every feed message.
type consumer struct {
	mu       sync.Mutex
	got      []delivery
	messages int
	errs     []string
}

func (e *env) consumer(instance string) *consumer {
	e.t.Helper()
	ch, err := e.conn.Channel()
	if err != nil {
		e.t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, instance, e.exchange, false, nil); err != nil {
		e.t.Fatal(err)
	}
	ds, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c := &consumer{}
	go func() {
		for d := range ds {
			var got []delivery
			err := domain.EachDelivery(d.Body, func(frame []byte, to domain.Recipients) {
				dl := delivery{instance: d.RoutingKey, to: to.Strings(), body: frame}
				if err := json.Unmarshal(frame, &dl.frame); err != nil {
					c.mu.Lock()
					c.errs = append(c.errs, "bad frame: "+err.Error())
					c.mu.Unlock()
				}
				got = append(got, dl)
			})
			c.mu.Lock()
			if err != nil {
				c.errs = append(c.errs, "bad feed message: "+err.Error())
			}
			c.messages++
			c.got = append(c.got, got...)
			c.mu.Unlock()
		}
	}()
	e.t.Cleanup(func() { _ = ch.Close() })
	return c
}

func (c *consumer) deliveries() []delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]delivery(nil), c.got...)
}

// recipientCount counts, per (user, event), how often a user was named in a delivery.
func recipientCount(ds []delivery) map[[2]string]int {
	out := map[[2]string]int{}
	for _, d := range ds {
		for _, u := range d.recipients() {
			out[[2]string{u, d.frame.PostID + d.frame.Type}]++
		}
	}
	return out
}

// connected puts users online on a fresh realtime instance and returns that instance's consumer.
func (e *env) connected(users ...string) *consumer {
	e.t.Helper()
	instance := "rt-" + uuid.NewString()
	e.online(instance, users...)
	return e.consumer(instance)
}

// named reports whether a delivery of post postID named user.
func named(c *consumer, postID, user string) bool {
	for _, d := range c.deliveries() {
		if d.frame.PostID == postID && slices.Contains(d.recipients(), user) {
			return true
		}
	}
	return false
}

// newDBEnv is an env with a database only, for tests that publish nothing.
func newDBEnv(t testing.TB) *env {
	db := pgtest.New(t)
	return &env{t: t, db: db, posts: postgres.NewPostService(db.Pool)}
}
