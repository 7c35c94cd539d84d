package amqp_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/amqp/amqptest"
)

// TestSubscriberReceivesItsTopicOnlyAndSurvivesAReconnect: an instance's queue is bound with its
// own id only; after the connection is cut the subscriber declares queue and binding again, tells
// OnConnect (the realtime fills its sockets' gaps), and messages flow on the same channel.
func TestSubscriberReceivesItsTopicOnlyAndSurvivesAReconnect(t *testing.T) {
	t.Parallel()
	exchange := amqptest.Exchange(t, "")
	proxy := amqptest.NewProxy(t, amqptest.Addr())
	var connects atomic.Int64
	d := amqp.NewDialer([]string{proxy.URL()})
	sub, err := amqp.NewSubscriber(amqp.SubscriberConfig{Dialer: d, Exchange: exchange, QueuePrefix: "test.rt." + uuid.NewString()[:8] + ".",
		OnConnect: func() { connects.Add(1) }, MinBackoff: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "rt-me")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = sub.Close() })
	wait.For(t, 10*time.Second, "subscriber ready", func() bool { return sub.Ready(ctx) == nil })

	pub := newPublisher(t, exchange, amqptest.URL())
	send := func(topic, body string) {
		t.Helper()
		if err := pub.Publish(topic, message.NewMessage(uuid.NewString(), []byte(body))); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() string {
		t.Helper()
		select {
		case m := <-msgs:
			m.Ack()
			return string(m.Payload)
		case <-time.After(5 * time.Second):
			t.Fatal("no message within 5s")
			return ""
		}
	}
	send("rt-other", "not mine")
	send("rt-me", "one")
	if got := recv(); got != "one" {
		t.Fatalf("got %q, want one (another instance's message must not arrive)", got)
	}

	proxy.Cut()
	wait.For(t, 10*time.Second, "reconnected", func() bool { return connects.Load() == 2 && sub.Ready(ctx) == nil })
	send("rt-me", "two")
	if got := recv(); got != "two" {
		t.Fatalf("after the reconnect got %q, want two", got)
	}
}
