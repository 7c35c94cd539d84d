package amqp_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/amqp/amqptest"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want amqp.Version
		ok   bool
	}{
		{"3.10.8", amqp.Version{Major: 3, Minor: 10, Patch: 8}, true},
		{"3.11.0", amqp.Version{Major: 3, Minor: 11}, true},
		{"3.13.1", amqp.Version{Major: 3, Minor: 13, Patch: 1}, true},
		{"4.0.5", amqp.Version{Major: 4, Patch: 5}, true},
		{"4.1.0-rc.1", amqp.Version{Major: 4, Minor: 1}, true},
		{"3.12.0+12.g1a2b3c4", amqp.Version{Major: 3, Minor: 12}, true},
		{"3.9", amqp.Version{Major: 3, Minor: 9}, true},
		{" 4.0.5 ", amqp.Version{Major: 4, Patch: 5}, true},
		{"", amqp.Version{}, false},
		{"4", amqp.Version{}, false},
		{"garbage", amqp.Version{}, false},
		{"4.x.1", amqp.Version{}, false},
		{"4..1", amqp.Version{}, false},
		{"1.2.3.4", amqp.Version{}, false},
		{"v4.0.5", amqp.Version{}, false},
	} {
		got, ok := amqp.ParseVersion(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseVersion(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestShapeForChoosesByVersion(t *testing.T) {
	for _, tc := range []struct {
		product, version string
		want             int
		warn             string // a word the warning must contain, "" for no warning
	}{
		{"RabbitMQ", "3.10.8", 1, "3.10.8"},
		{"RabbitMQ", "3.8.35", 1, "scanning every binding"},
		{"RabbitMQ", "3.11.0", 1000, ""},
		{"RabbitMQ", "3.11.0-rc.1", 1000, ""},
		{"RabbitMQ", "3.13.1", 1000, ""},
		{"RabbitMQ", "4.0.5", 1000, ""},
		{"RabbitMQ", "4.1.0-rc.1", 1000, ""},
		{"RabbitMQ", "", 1000, "not understood"},
		{"RabbitMQ", "garbage", 1000, "not understood"},
		{"", "", 1000, "not understood"},
		{"LavinMQ", "1.2.3", 1000, "not RabbitMQ"},
	} {
		s := amqp.ShapeFor(amqp.Broker{Product: tc.product, Version: tc.version})
		if s.FollowersPerMessage != tc.want {
			t.Errorf("%s %q: %d followers per message, want %d", tc.product, tc.version, s.FollowersPerMessage, tc.want)
		}
		if tc.warn == "" && s.Warning != "" || !strings.Contains(s.Warning, tc.warn) {
			t.Errorf("%s %q: warning %q, want one containing %q", tc.product, tc.version, s.Warning, tc.warn)
		}
		if s.Reason == "" {
			t.Errorf("%s %q: no reason", tc.product, tc.version)
		}
	}
}

// TestPublisherConnectReadsTheBrokerVersion checks the version the publisher reports against the
// server properties of a connection of the test's own, and the shape ShapeFor picks for it: run
// against RabbitMQ 3.10 and 4.x (TEST_AMQP_URL) it covers both branches on real brokers.
func TestPublisherConnectReadsTheBrokerVersion(t *testing.T) {
	conn, err := amqp091.Dial(amqptest.URL())
	if err != nil {
		t.Skipf("broker %s not reachable: %v", amqptest.URL(), err)
	}
	want, _ := conn.Properties["version"].(string)
	product, _ := conn.Properties["product"].(string)
	_ = conn.Close()
	if want == "" {
		t.Fatalf("broker at TEST_AMQP_URL announced no version: %v", conn.Properties)
	}

	var mu sync.Mutex
	var seen []amqp.Broker
	pub, err := amqp.NewPublisher(amqp.PublisherConfig{Dialer: amqp.NewDialer([]string{amqptest.URL()}),
		Logger: slog.New(slog.DiscardHandler),
		OnConnect: func(b amqp.Broker) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, b)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	b, err := pub.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != want || b.Product != product {
		t.Errorf("Connect: %+v, want product %q version %q", b, product, want)
	}
	if strings.Contains(b.Addr, "guest:guest") {
		t.Errorf("Connect: address %q not redacted", b.Addr)
	}
	if again, err := pub.Connect(context.Background()); err != nil || again != b {
		t.Errorf("second Connect: %+v, %v; want the same connection's %+v", again, err, b)
	}
	mu.Lock()
	if len(seen) != 1 || seen[0] != b {
		t.Errorf("OnConnect saw %+v, want once %+v", seen, b)
	}
	mu.Unlock()

	v, ok := amqp.ParseVersion(want)
	if !ok {
		t.Fatalf("version %q does not parse", want)
	}
	shape := amqp.ShapeFor(b)
	old := v.Major < 3 || v.Major == 3 && v.Minor < 11
	switch {
	case old && (shape.FollowersPerMessage != 1 || !strings.Contains(shape.Warning, want)):
		t.Errorf("RabbitMQ %s (index routing from 3.11): shape %+v, want 1 follower per message and a warning naming the version", want, shape)
	case !old && (shape.FollowersPerMessage != amqp.MaxFollowersPerMessage || shape.Warning != ""):
		t.Errorf("RabbitMQ %s: shape %+v, want %d followers per message and no warning", want, shape, amqp.MaxFollowersPerMessage)
	}
	t.Logf("broker %s: %d followers per message (%s)", b, shape.FollowersPerMessage, shape.Reason)
}

func TestDialerProbeReportsAnUnreachableBroker(t *testing.T) {
	d := amqp.NewDialer([]string{"amqp://guest:secret@127.0.0.1:1/"})
	_, err := d.Probe(context.Background())
	if err == nil {
		t.Fatal("probe of a closed port succeeded")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("probe error shows the password: %v", err)
	}
}
