package amqp_test

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/outbox/broker"
)

// Lanes are separate channels: the broker keeps order within each one, and every message is
// confirmed whatever lane it went on.
func TestPublisherLanesConfirmEverythingAndKeepOrderPerLane(t *testing.T) {
	t.Parallel()
	const lanes, perLane = 4, 500
	e := newPubEnv(t)
	keys := make([]string, lanes)
	for l := range keys {
		keys[l] = "lane" + strconv.Itoa(l)
	}
	_, ds := e.queue(t, nil, keys...)
	d := amqp.NewDialer([]string{amqptest.URL()})
	p, err := amqp.NewPublisher(amqp.PublisherConfig{Dialer: d, Lanes: lanes, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if p.Lanes() != lanes {
		t.Fatalf("Lanes() = %d, want %d", p.Lanes(), lanes)
	}

	// Two calls, so order must also hold across calls; lane l's messages carry key lane<l>.
	var pending []broker.Confirms
	for call := range 2 {
		msgs := make([]amqp.Outgoing, 0, lanes*perLane/2)
		for i := range lanes * perLane / 2 {
			l := i % lanes
			seq := call*perLane/2 + i/lanes
			msgs = append(msgs, amqp.Outgoing{MessageID: uuid.NewString(), RoutingKey: keys[l], Lane: l,
				Body: []byte(strconv.Itoa(seq))})
		}
		pending = append(pending, p.Send(context.Background(), e.exchange, msgs))
	}
	for _, c := range pending {
		if err := c.Wait(); err != nil {
			t.Fatalf("confirms: %v", err)
		}
	}

	next := make(map[string]int, lanes)
	deadline := time.After(20 * time.Second)
	for n := 0; n < lanes*perLane; n++ {
		select {
		case m := <-ds:
			if got, want := string(m.Body), strconv.Itoa(next[m.RoutingKey]); got != want {
				t.Fatalf("%s: message %s arrived where %s was due (order within a lane)", m.RoutingKey, got, want)
			}
			next[m.RoutingKey]++
		case <-deadline:
			t.Fatalf("only %d of %d messages arrived", n, lanes*perLane)
		}
	}
	for _, k := range keys {
		if next[k] != perLane {
			t.Errorf("%s: %d messages, want %d", k, next[k], perLane)
		}
	}
}

func TestPublisherConfigRejectsLanesOutOfRange(t *testing.T) {
	t.Parallel()
	for _, lanes := range []int{-1, 65} {
		_, err := amqp.NewPublisher(amqp.PublisherConfig{Dialer: amqp.NewDialer([]string{amqptest.URL()}), Lanes: lanes})
		if err == nil {
			t.Errorf("Lanes %d accepted", lanes)
		}
	}
	if _, err := amqp.NewPublisher(amqp.PublisherConfig{Dialer: amqp.NewDialer([]string{amqptest.URL()}), Lanes: 64}); err != nil {
		t.Errorf("Lanes 64 refused: %v", err)
	}
}
