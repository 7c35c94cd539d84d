package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/amqp/amqptest"
)

// pubEnv is a test exchange (deleted at cleanup) and a broker connection for consumers.
type pubEnv struct {
	exchange string
	ch       *amqp091.Channel
}

func newPubEnv(t *testing.T) *pubEnv {
	t.Helper()
	conn, err := amqp091.Dial(amqptest.URL())
	if err != nil {
		t.Fatalf("dial rabbitmq: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	e := &pubEnv{exchange: "test.pub." + uuid.NewString(), ch: ch}
	t.Cleanup(func() {
		_ = ch.ExchangeDelete(e.exchange, false, false)
		_ = conn.Close()
	})
	return e
}

// queue declares the exchange (as the realtime side does), binds an exclusive queue with keys
// and returns its deliveries.
func (e *pubEnv) queue(t *testing.T, args amqp091.Table, keys ...string) (string, <-chan amqp091.Delivery) {
	t.Helper()
	if err := e.ch.ExchangeDeclare(e.exchange, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := e.ch.QueueDeclare("", false, true, true, false, args)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := e.ch.QueueBind(q.Name, k, e.exchange, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if args != nil {
		return q.Name, nil
	}
	ds, err := e.ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Name, ds
}

func newPublisher(t *testing.T, exchange string, urls ...string) *amqp.Publisher {
	t.Helper()
	d := amqp.NewDialer(urls)
	d.Timeout = 2 * time.Second
	p, err := amqp.NewPublisher(amqp.PublisherConfig{Dialer: d, Exchange: exchange, PublishTimeout: 5 * time.Second,
		ReconnectBackoffMin: 50 * time.Millisecond, ReconnectBackoffMax: 500 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func feedMessage(id string) *message.Message {
	m := message.NewMessage(id, []byte(`{"postId":"p"}`))
	m.Metadata.Set("x-trace", "t1")
	return m
}

func receive(t *testing.T, ds <-chan amqp091.Delivery) amqp091.Delivery {
	t.Helper()
	select {
	case d := <-ds:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery within 5s")
		return amqp091.Delivery{}
	}
}

func TestPublisherSendsTheTopicAsRoutingKeyWithMessageIDAndMetadata(t *testing.T) {
	t.Parallel()
	e := newPubEnv(t)
	_, ds := e.queue(t, nil, "rt-1")
	p := newPublisher(t, e.exchange, amqptest.URL())
	id := uuid.NewString()
	if err := p.Publish("rt-1", feedMessage(id)); err != nil {
		t.Fatalf("publish: %v", err)
	}
	d := receive(t, ds)
	if d.RoutingKey != "rt-1" || d.Exchange != e.exchange || d.MessageId != id || d.ContentType != "application/json" || d.DeliveryMode != amqp091.Transient {
		t.Errorf("delivery exchange=%q key=%q id=%q type=%q mode=%d", d.Exchange, d.RoutingKey, d.MessageId, d.ContentType, d.DeliveryMode)
	}
	if d.Headers["x-trace"] != "t1" {
		t.Errorf("metadata not carried as a header: %#v", d.Headers)
	}
	if string(d.Body) != `{"postId":"p"}` {
		t.Errorf("body %q", d.Body)
	}
}

func TestPublisherReportsNackedMessagesAsRefused(t *testing.T) {
	t.Parallel()
	e := newPubEnv(t)
	// A queue that refuses everything: the broker nacks messages routed to it.
	e.queue(t, amqp091.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"}, "refuser")
	p := newPublisher(t, e.exchange, amqptest.URL())
	err := p.Publish("refuser", feedMessage(uuid.NewString()), feedMessage(uuid.NewString()))
	var pe *amqp.PublishError
	if !errors.As(err, &pe) || !amqp.IsRefused(err) {
		t.Fatalf("err = %v, want a PublishError that IsRefused", err)
	}
	if len(pe.Failed) != 2 {
		t.Errorf("failed = %v, want both messages", pe.Failed)
	}
	// The channel survives a nack.
	if err := p.Publish("a", feedMessage(uuid.NewString())); err != nil || amqp.IsRefused(err) {
		t.Errorf("publish after nack: %v", err)
	}
}

func deadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return amqptest.URLVia(addr)
}

func TestPublisherFailsFastWhileBrokerIsUnreachable(t *testing.T) {
	t.Parallel()
	e := newPubEnv(t)
	p := newPublisher(t, e.exchange, deadURL(t))
	for range 3 {
		start := time.Now()
		err := p.Publish("a", feedMessage(uuid.NewString()))
		if !errors.Is(err, amqp.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if time.Since(start) > 3*time.Second {
			t.Fatalf("Publish blocked %s on a dead broker", time.Since(start))
		}
	}
	if err := p.Ready(context.Background()); err == nil {
		t.Error("Ready on a dead broker = nil")
	}
}

func TestPublisherFailsOverToTheNextBroker(t *testing.T) {
	t.Parallel()
	e := newPubEnv(t)
	_, ds := e.queue(t, nil, "k")
	p := newPublisher(t, e.exchange, deadURL(t), amqptest.URL())
	if err := p.Publish("k", feedMessage(uuid.NewString())); err != nil {
		t.Fatalf("publish with a dead first node: %v", err)
	}
	receive(t, ds)
	if err := p.Ready(context.Background()); err != nil {
		t.Errorf("Ready = %v", err)
	}
}

func TestPublisherReconnectsAfterTheConnectionIsLost(t *testing.T) {
	t.Parallel()
	e := newPubEnv(t)
	_, ds := e.queue(t, nil, "k")
	p := newPublisher(t, e.exchange, amqptest.URL())
	if err := p.Publish("k", feedMessage(uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	receive(t, ds)
	// Deleting the exchange under the publisher makes the broker close its channel (404) on
	// the next publish; that publish fails as unavailable and the one after reconnects and
	// declares the exchange again.
	if err := e.ch.ExchangeDelete(e.exchange, false, false); err != nil {
		t.Fatal(err)
	}
	err := p.Publish("k", feedMessage(uuid.NewString()))
	if err != nil && !errors.Is(err, amqp.ErrUnavailable) {
		t.Fatalf("err = %v, want nil or ErrUnavailable", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.Publish("k", feedMessage(uuid.NewString()))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publisher did not recover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPublisherCloseIsFinal(t *testing.T) {
	t.Parallel()
	e := newPubEnv(t)
	p := newPublisher(t, e.exchange, amqptest.URL())
	if err := p.Publish("k", feedMessage(uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := p.Publish("k", feedMessage(uuid.NewString())); !errors.Is(err, amqp.ErrClosed) {
		t.Errorf("publish after close = %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestIsRefusedOnlyWhenEveryFailureIsANack(t *testing.T) {
	nack := fmt.Errorf("%w: message m", amqp.ErrNacked)
	down := fmt.Errorf("%w: channel closed", amqp.ErrUnavailable)
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&amqp.PublishError{Failed: map[int]error{0: nack, 1: nack}}, true},
		{&amqp.PublishError{Failed: map[int]error{0: nack, 1: down}}, false},
		{&amqp.PublishError{Failed: map[int]error{0: down}}, false},
		{amqp.ErrClosed, false},
		{nack, true},
	} {
		if got := amqp.IsRefused(tc.err); got != tc.want {
			t.Errorf("IsRefused(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
