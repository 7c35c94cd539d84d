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

	amqpadapter "github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
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

// indexRouting says whether RabbitMQ version v looks routing keys up by index (3.11 and later),
// written out here independently of amqp.ShapeFor so that a wrong threshold there fails the test.
func indexRouting(t *testing.T, v string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("version %q: %v", v, err)
	}
	return major > 3 || major == 3 && minor >= 11
}

// TestDispatcherChoosesMessageShapeByBrokerVersion runs `social dispatcher` against the broker of
// TEST_AMQP_URL and counts the messages one post to three followers becomes: one message with two
// CC keys on RabbitMQ ≥ 3.11, three single-key messages on older RabbitMQ; RELAY_FOLLOWERS_PER_MESSAGE
// overrides either. The start-up log names the version and the shape, with a warning on 3.10.
func TestDispatcherChoosesMessageShapeByBrokerVersion(t *testing.T) {
	version := brokerVersion(t)
	modern := indexRouting(t, version)
	auto := 3
	if modern {
		auto = 1
	}
	for _, tc := range []struct {
		name     string
		override string
		messages int
		warn     bool
	}{
		{"automatic", "", auto, !modern},
		{"override 2", "2", 2, false},
		{"override 1000", "1000", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := pgtest.New(t)
			exchange := amqptest.Exchange(t, "test.shape.")
			author, followers := seedFollowers(t, db, 3)
			deliveries := bindQueue(t, exchange, followers)

			env := map[string]string{"DATABASE_URL": db.URL, "AMQP_URL": amqptest.URL(), "AMQP_EXCHANGE": exchange,
				"DISPATCHER_ADDR": "127.0.0.1:0", "LOG_LEVEL": "info"}
			if tc.override != "" {
				env["RELAY_FOLLOWERS_PER_MESSAGE"] = tc.override
			}
			logs := startDispatcher(t, env)
			if _, err := postgres.NewPostService(db.Pool).Create(context.Background(), author, "shape"); err != nil {
				t.Fatal(err)
			}

			got := map[string]int{}
			var msgs []amqp091.Delivery
			timeout := time.After(20 * time.Second)
			for len(got) < len(followers) {
				select {
				case d := <-deliveries:
					msgs = append(msgs, d)
					got[d.RoutingKey]++
					cc, _ := d.Headers[amqpadapter.HeaderCC].([]interface{})
					for _, k := range cc {
						got[k.(string)]++
					}
				case <-timeout:
					t.Fatalf("followers reached: %v after 20s\n%s", got, logs.String())
				}
			}
			if len(msgs) != tc.messages {
				t.Errorf("RabbitMQ %s: the post became %d messages, want %d", version, len(msgs), tc.messages)
			}
			for _, f := range followers {
				if got[f] != 1 {
					t.Errorf("follower %s named %d times, want once", f, got[f])
				}
			}

			started := logLine(t, logs.String(), "dispatcher started")
			if started["broker_version"] != "RabbitMQ "+version {
				t.Errorf("start-up line: broker_version %v, want RabbitMQ %s", started["broker_version"], version)
			}
			want := map[string]float64{"": float64(amqpadapter.MaxFollowersPerMessage), "2": 2, "1000": 1000}[tc.override]
			if tc.override == "" && !modern {
				want = 1
			}
			if started["followers_per_message"] != want {
				t.Errorf("start-up line: followers_per_message %v, want %v", started["followers_per_message"], want)
			}
			warned := strings.Contains(logs.String(), `"level":"WARN","msg":"RabbitMQ `+version+` routes a message with N keys by scanning every binding`)
			if warned != tc.warn {
				t.Errorf("3.10 warning logged: %v, want %v\n%s", warned, tc.warn, logs.String())
			}
		})
	}
}

func TestChooseShapeOverride(t *testing.T) {
	old := amqpadapter.Broker{Product: "RabbitMQ", Version: "3.10.8"}
	modern := amqpadapter.Broker{Product: "RabbitMQ", Version: "4.0.5"}
	for _, tc := range []struct {
		override int
		broker   amqpadapter.Broker
		want     int
		warning  bool
	}{
		{0, old, 1, true},
		{0, modern, 1000, false},
		{0, amqpadapter.Broker{}, 1000, true},
		{1000, old, 1000, false},
		{1, modern, 1, false},
		{250, modern, 250, false},
	} {
		s := chooseShape(tc.override, tc.broker)
		if s.FollowersPerMessage != tc.want || (s.Warning != "") != tc.warning {
			t.Errorf("override %d on %s: %+v, want %d followers per message, warning %v", tc.override, tc.broker, s, tc.want, tc.warning)
		}
	}
}

func TestRelayFollowersPerMessageIsAutomaticUnlessSet(t *testing.T) {
	for in, want := range map[string]int{"": 0, "0": 0, "1": 1, "1000": 1000} {
		env := map[string]string{}
		if in != "" {
			env["RELAY_FOLLOWERS_PER_MESSAGE"] = in
		}
		cfg, err := parseConfig(env)
		if err != nil || cfg.RelayFollowersPerMessage != want {
			t.Errorf("RELAY_FOLLOWERS_PER_MESSAGE=%q: %d, %v; want %d", in, cfg.RelayFollowersPerMessage, err, want)
		}
	}
	for _, bad := range []string{"-1", "1001", "many"} {
		if _, err := parseConfig(map[string]string{"RELAY_FOLLOWERS_PER_MESSAGE": bad}); err == nil {
			t.Errorf("RELAY_FOLLOWERS_PER_MESSAGE=%s accepted", bad)
		}
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
	if err := ch.ExchangeDeclare(exchange, amqpadapter.ExchangeKind, true, false, false, false, nil); err != nil {
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
	opsWaitUntil(t, 20*time.Second, "dispatcher /readyz", func() bool { return httpOK(base + "/readyz") })
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
