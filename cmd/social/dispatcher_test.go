package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/internal/wait"
)

// brokerVersion dials the broker of TEST_AMQP_URL on a connection of the test's own and returns
// its announced version; the test is skipped when the broker is not reachable.
func brokerVersion(t *testing.T) string {
	t.Helper()
	conn, err := amqp091.Dial(amqptest.URL())
	if err != nil {
		t.Skipf("broker of TEST_AMQP_URL (%s) not reachable: %v", redactURL(amqptest.URL()), err)
	}
	defer conn.Close()
	v, _ := conn.Properties["version"].(string)
	if v == "" {
		t.Fatalf("broker announced no version: %v", conn.Properties)
	}
	return v
}

// TestDispatcherSendsOneMessagePerInstance runs `social dispatcher` against the broker of
// TEST_AMQP_URL (RabbitMQ 4 in make test, 3.10 in make test-floor: the shape is the same): one post
// to three online followers, two on one realtime instance and one on another, and an offline
// fourth, becomes one message per instance, routing key = the instance's id, naming that
// instance's followers. The start-up log names the broker's version.
func TestDispatcherSendsOneMessagePerInstance(t *testing.T) {
	version := brokerVersion(t)
	db := pgtest.New(t)
	exchange := amqptest.Exchange(t, "test.dispatch.")
	author, followers := seedFollowers(t, db, 4)
	for instance, users := range map[string][]string{"rt-a": followers[:2], "rt-b": followers[2:3]} {
		db.Exec(t, `INSERT INTO realtime_instances (id, lease_until) VALUES ($1, now() + interval '1 hour')`, instance)
		db.Exec(t, `INSERT INTO presence (user_id, instance_id) SELECT u, $1 FROM unnest($2::uuid[]) AS u`, instance, users)
	}
	a, b := bindQueue(t, exchange, []string{"rt-a"}), bindQueue(t, exchange, []string{"rt-b"})

	env := map[string]string{"DATABASE_URL": db.URL, "AMQP_URL": amqptest.URL(), "AMQP_EXCHANGE": exchange,
		"DISPATCHER_ADDR": "127.0.0.1:0", "LOG_LEVEL": "info"}
	logs := startDispatcher(t, env)
	if _, err := postgres.NewPostService(db.Pool).Create(context.Background(), author, "one per instance"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ds   <-chan amqp091.Delivery
		want []string
	}{{"rt-a", a, followers[:2]}, {"rt-b", b, followers[2:3]}} {
		var d amqp091.Delivery
		select {
		case d = <-tc.ds:
		case <-time.After(20 * time.Second):
			t.Fatalf("no message for %s after 20s\n%s", tc.name, logs.String())
		}
		if d.RoutingKey != tc.name {
			t.Errorf("routing key %q, want %q", d.RoutingKey, tc.name)
		}
		var got []string
		var frames int
		if err := domain.EachDelivery(d.Body, func(frame []byte, to domain.Recipients) {
			frames++
			got = append(got, to.Strings()...)
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if frames != 1 || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %d frames to %v, want one to %v", tc.name, frames, got, tc.want)
		}
	}
	// No duplicate: the next message of each instance is the next post's.
	if _, err := postgres.NewPostService(db.Pool).Create(context.Background(), author, "the next"); err != nil {
		t.Fatal(err)
	}
	for _, ds := range []<-chan amqp091.Delivery{a, b} {
		select {
		case d := <-ds:
			if !strings.Contains(string(d.Body), "the next") {
				t.Errorf("a second message for the first post: %q", d.Body)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the next post did not arrive")
		}
	}
	started := logLine(t, logs.String(), "dispatcher started")
	if started["broker_version"] != "RabbitMQ "+version {
		t.Errorf("start-up line: broker_version %v, want RabbitMQ %s", started["broker_version"], version)
	}
}

// seedFollowers registers an author and n followers of theirs.
func seedFollowers(t *testing.T, db *pgtest.DB, n int) (author string, followers []string) {
	t.Helper()
	ctx := context.Background()
	users := postgres.NewUserService(db.Pool)
	register := func(name string) string {
		id, err := users.Register(ctx, domain.Registration{FirstName: name, SecondName: "Shape", Birthdate: "1990-01-02",
			City: "Riga", Password: "x"}, time.Date(1990, 1, 2, 0, 0, 0, 0, time.UTC), "hash")
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	author = register("Author")
	friends := postgres.NewFriendService(db.Pool)
	for i := range n {
		f := register(fmt.Sprintf("F%d", i))
		if err := friends.Set(ctx, f, author); err != nil {
			t.Fatal(err)
		}
		followers = append(followers, f)
	}
	slices.Sort(followers)
	return author, followers
}

// bindQueue declares exchange and an exclusive queue bound with keys, as a realtime instance does.
func bindQueue(t *testing.T, exchange string, keys []string) <-chan amqp091.Delivery {
	t.Helper()
	conn, err := amqp091.Dial(amqptest.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := ch.QueueBind(q.Name, k, exchange, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	d, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// startDispatcher runs `social dispatcher` with env until the test ends and returns its log once
// /readyz says it relays (it has chosen its message shape).
func startDispatcher(t *testing.T, env map[string]string) *syncBuffer {
	t.Helper()
	var logs syncBuffer
	addrs := make(chan net.Addr, 1)
	a := &app{stdout: &logs, stderr: &logs, onListen: func(_ string, addr net.Addr) { addrs <- addr }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, []string{"dispatcher"}, env) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("social dispatcher: %v\n%s", err, logs.String())
		}
	})
	var base string
	select {
	case addr := <-addrs:
		base = "http://" + addr.String()
	case err := <-done:
		t.Fatalf("social dispatcher stopped: %v\n%s", err, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("social dispatcher did not listen\n%s", logs.String())
	}
	wait.For(t, 20*time.Second, "dispatcher /readyz", func() bool { return httpOK(base + "/readyz") })
	return &logs
}

// logLine returns the first JSON log line whose msg is msg.
func logLine(t *testing.T, logs, msg string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	t.Fatalf("no log line %q in:\n%s", msg, logs)
	return nil
}

func httpOK(url string) bool {
	res, err := http.Get(url)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}
