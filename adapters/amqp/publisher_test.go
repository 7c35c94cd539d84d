package amqp_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
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

func newPublisher(t *testing.T, urls ...string) *amqp.Publisher {
	t.Helper()
	d := amqp.NewDialer(urls)
	d.Timeout = 2 * time.Second
	p, err := amqp.NewPublisher(amqp.PublisherConfig{Dialer: d, PublishTimeout: 5 * time.Second,
		ReconnectBackoffMin: 50 * time.Millisecond, ReconnectBackoffMax: 500 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func feedMessage(id, key string, cc ...string) *message.Message {
	m := message.NewMessage(id, []byte(`{"postId":"p"}`))
	m.Metadata.Set(amqp.MetadataRoutingKey, key)
	if len(cc) > 0 {
		m.Metadata.Set(amqp.MetadataCC, strings.Join(cc, ","))
	}
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

func TestPublisherSendsRoutingKeyCCArrayAndMessageID(t *testing.T) {
	t.Parallel()
	e := newPubEnv(t)
	_, ds := e.queue(t, nil, "u3") // bound only with a CC key: CC is honoured by the broker
	p := newPublisher(t, amqptest.URL())
	id := uuid.NewString()
	if err := p.Publish(e.exchange, feedMessage(id, "u1", "u2", "u3")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	d := receive(t, ds)
	if d.RoutingKey != "u1" || d.MessageId != id || d.ContentType != "application/json" || d.DeliveryMode != amqp091.Transient {
		t.Errorf("delivery key=%q id=%q type=%q mode=%d", d.RoutingKey, d.MessageId, d.ContentType, d.DeliveryMode)
	}
	cc, ok := d.Headers[amqp.HeaderCC].([]interface{})
	if !ok || len(cc) != 2 || cc[0] != "u2" || cc[1] != "u3" {
		t.Errorf("CC header %#v, want array [u2 u3]", d.Headers[amqp.HeaderCC])
	}
	if string(d.Body) != `{"postId":"p"}` {
		t.Errorf("body %q", d.Body)
	}
}

func TestPublisherReportsOnlyTheNackedMessage(t *testing.T) {
	t.Parallel()
	e := newPubEnv(t)
	// A queue that refuses everything: the broker nacks messages routed to it.
	e.queue(t, amqp091.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"}, "refuser")
	p := newPublisher(t, amqptest.URL())
	err := p.Publish(e.exchange, feedMessage(uuid.NewString(), "a"), feedMessage(uuid.NewString(), "refuser"), feedMessage(uuid.NewString(), "b"))
	var pe *amqp.PublishError
	if !errors.As(err, &pe) || !errors.Is(err, amqp.ErrNacked) {
		t.Fatalf("err = %v, want a PublishError with ErrNacked", err)
	}
	if len(pe.Failed) != 1 || pe.Failed[1] == nil {
		t.Errorf("failed = %v, want only message 1", pe.Failed)
	}
	// The channel survives a nack.
	if err := p.Publish(e.exchange, feedMessage(uuid.NewString(), "a")); err != nil {
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
	p := newPublisher(t, deadURL(t))
	for range 3 {
		start := time.Now()
		err := p.Publish(e.exchange, feedMessage(uuid.NewString(), "a"))
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
	p := newPublisher(t, deadURL(t), amqptest.URL())
	if err := p.Publish(e.exchange, feedMessage(uuid.NewString(), "k")); err != nil {
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
	p := newPublisher(t, amqptest.URL())
	if err := p.Publish(e.exchange, feedMessage(uuid.NewString(), "k")); err != nil {
		t.Fatal(err)
	}
	receive(t, ds)
	// Deleting the exchange under the publisher makes the broker close its channel (404) on
	// the next publish; that publish fails as unavailable and the one after reconnects and
	// declares the exchange again.
	if err := e.ch.ExchangeDelete(e.exchange, false, false); err != nil {
		t.Fatal(err)
	}
	err := p.Publish(e.exchange, feedMessage(uuid.NewString(), "k"))
	if err != nil && !errors.Is(err, amqp.ErrUnavailable) {
		t.Fatalf("err = %v, want nil or ErrUnavailable", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.Publish(e.exchange, feedMessage(uuid.NewString(), "k"))
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
	p := newPublisher(t, amqptest.URL())
	if err := p.Publish(e.exchange, feedMessage(uuid.NewString(), "k")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := p.Publish(e.exchange, feedMessage(uuid.NewString(), "k")); !errors.Is(err, amqp.ErrClosed) {
		t.Errorf("publish after close = %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}
