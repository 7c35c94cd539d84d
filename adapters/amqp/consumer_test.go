package amqp_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/amqp/amqptest"
)

// startConsumer runs a consumer built from cfg until the test ends and returns it with a channel
// of the test's own on the same broker (to publish or probe with); the exchange is deleted after
// the consumer stopped.
func startConsumer(t *testing.T, cfg amqp.ConsumerConfig) (*amqp.Consumer, *amqp091.Channel) {
	t.Helper()
	c, err := amqp.NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	conn, err := amqp091.Dial(amqptest.URL())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		<-done
		_ = ch.ExchangeDelete(cfg.Exchange, false, false)
		conn.Close()
	})
	return c, ch
}

// TestConsumerDeliversToRoutingKeyAndCC publishes the way the dispatcher does and checks that the
// consumer's one queue gets one copy naming every recipient, and only while a recipient is bound.
func TestConsumerDeliversToRoutingKeyAndCC(t *testing.T) {
	t.Parallel()
	exchange := "test.feed." + uuid.NewString()
	got := make(chan amqp.Delivery, 10)
	c, ch := startConsumer(t, amqp.ConsumerConfig{
		Dialer: amqp.NewDialer([]string{amqptest.URL()}), Exchange: exchange, QueuePrefix: "test.realtime.",
		Handle: func(d amqp.Delivery) { got <- d },
	})
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("consumer not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a, b, x := uuid.NewString(), uuid.NewString(), uuid.NewString()
	for _, u := range []string{a, b} {
		if err := c.Bind(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(id, key string, cc ...any) {
		t.Helper()
		err := ch.PublishWithContext(ctx, exchange, key, false, false, amqp091.Publishing{
			MessageId: id, Body: []byte(`{"position":1}`), Headers: amqp091.Table{amqp.HeaderCC: cc}})
		if err != nil {
			t.Fatal(err)
		}
	}
	next := func() amqp.Delivery {
		t.Helper()
		select {
		case d := <-got:
			return d
		case <-time.After(5 * time.Second):
			t.Fatal("no delivery")
		}
		return amqp.Delivery{}
	}
	// a and b are both bound here: the broker still sends one copy, naming x too.
	publish("m1", x, a, b)
	d := next()
	if d.MessageID != "m1" || !slices.Equal(d.Recipients, []string{x, a, b}) || string(d.Body) != `{"position":1}` {
		t.Fatalf("delivery %+v", d)
	}
	if err := c.Unbind(ctx, a); err != nil {
		t.Fatal(err)
	}
	publish("m2", a)    // nobody bound: dropped by the broker
	publish("m3", b, x) // b still bound
	if d := next(); d.MessageID != "m3" {
		t.Fatalf("got %s, want m3 (m1 twice or m2 after unbind?)", d.MessageID)
	}
}
