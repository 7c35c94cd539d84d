package outbox_test

import (
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/prometheus/client_golang/prometheus"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/outbox"
)

// deadPort returns a local address nothing listens on (yet).
func deadPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestRelayKeepsBacklogWhileBrokerIsDownAndDrainsItAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(3)
	author, followers := us[0], us[1:]
	e.follow(author, followers)
	c := e.connected(followers...)

	addr := deadPort(t)
	live, _ := url.Parse(amqptest.URL())
	down := *live
	down.Host = addr
	reg := prometheus.NewRegistry()
	e.relay(outbox.Config{Publisher: e.publisher(down.String()), Registerer: reg, MaxAttempts: 2})
	const total = 50
	for range total {
		e.post(author, "p")
	}
	wait.For(t, 10*time.Second, "failed publishes", func() bool { return metricValue(t, reg, "social_outbox_publish_errors_total") >= 3 })
	// Unavailability is not the rows' fault: no attempt counted, nothing dead, nothing relayed.
	if n := e.db.Count(t, "outbox", "status = 'pending'", "attempts = 0"); n != total {
		t.Fatalf("%d rows pending with no attempts, want %d", n, total)
	}

	amqptest.NewProxyOn(t, addr, live.Host)
	wait.For(t, 30*time.Second, "backlog drained", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == total })
	wait.For(t, 10*time.Second, "deliveries", func() bool { return len(c.deliveries()) == total })
	// Counted right after the mark commits, which the database shows first.
	wait.For(t, 10*time.Second, "the relayed rows counted", func() bool {
		return metricValue(t, reg, "social_outbox_relayed_rows_total") == total
	})
}

// metricValue reads a counter, or a histogram's sample count, from reg: the one whose labels
// include the given name, value pairs (0 when absent).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Error(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			match := true
			for i := 0; i+1 < len(labels); i += 2 {
				match = match && have[labels[i]] == labels[i+1]
			}
			if match {
				if h := m.GetHistogram(); h != nil {
					return float64(h.GetSampleCount())
				}
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// An instance whose queue refuses every message (max-length 0, overflow reject-publish) makes the
// broker nack each message to it: a real poison row for an author whose only follower is there.
func TestPoisonRowGoesDeadAndDoesNotBlockOtherAuthors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(4)
	poisoned, healthy, victim, follower := us[0], us[1], us[2], us[3]
	e.follow(poisoned, []string{victim})
	e.follow(healthy, []string{follower})

	ch, err := e.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, amqp091.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	if err != nil {
		t.Fatal(err)
	}
	e.online("rt-poison", victim)
	if err := ch.QueueBind(q.Name, "rt-poison", e.exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	c := e.connected(follower)
	reg := prometheus.NewRegistry()
	e.relay(outbox.Config{MaxAttempts: 3, RetryBackoffMin: 10 * time.Millisecond, RetryBackoffMax: 20 * time.Millisecond,
		PollInterval: 20 * time.Millisecond, Registerer: reg})

	e.post(poisoned, "poison")
	for range 5 {
		e.post(healthy, "fine")
	}
	wait.For(t, 10*time.Second, "healthy posts", func() bool { return len(c.deliveries()) == 5 })
	wait.For(t, 10*time.Second, "poison row dead", func() bool {
		return e.db.Count(t, "outbox", "status = 'dead'", "attempts = 3", "last_error LIKE '%nack%'", "position IS NULL") == 1
	})
	if n := e.db.Count(t, "outbox", "status = 'relayed'"); n != 5 {
		t.Errorf("%d rows relayed, want the 5 healthy ones", n)
	}
	wait.For(t, 10*time.Second, "the dead row counted", func() bool {
		return metricValue(t, reg, "social_outbox_dead_rows_total") == 1
	})
	// A later post of the poisoned author is no longer blocked by the dead row (it is refused
	// in turn here, since its follower still refuses: it is attempted, not skipped).
	e.post(poisoned, "again")
	wait.For(t, 10*time.Second, "second row attempted", func() bool {
		return e.db.Count(t, "outbox", "attempts > 0") == 2
	})
}
