package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/socialnet/social/adapters/amqp"
)

// relayPublisher is the relay's message.Publisher under test: ours (adapters/amqp) or
// watermill-amqp v3 (design.md §7 asks to measure it against ours).
type relayPublisher struct {
	pub     message.Publisher
	refused func(error) bool
	close   func() error
}

// Publisher kinds of `socialbench relay -publisher`.
const (
	publisherOurs      = "ours"
	publisherWatermill = "watermill-amqp"
)

// newRelayPublisher builds and connects the relay's publisher (before the clock starts, as the
// baselines' connection is open too).
func (b *relayBench) newRelayPublisher(ctx context.Context, kind string) (*relayPublisher, error) {
	switch kind {
	case publisherOurs:
		pub, err := amqp.NewPublisher(amqp.PublisherConfig{Dialer: amqp.NewDialer([]string{b.svc.AMQPURL}), Exchange: b.exchange, Logger: quietLog()})
		if err != nil {
			return nil, err
		}
		if _, err := pub.Connect(ctx); err != nil {
			_ = pub.Close()
			return nil, err
		}
		return &relayPublisher{pub: pub, refused: amqp.IsRefused, close: pub.Close}, nil
	case publisherWatermill:
		exchange := b.exchange
		pub, err := wamqp.NewPublisher(wamqp.Config{
			Connection: wamqp.ConnectionConfig{AmqpURI: b.svc.AMQPURL},
			// Frames to exclusive queues are transient (design.md §7), as ours publishes them.
			Marshaler: wamqp.DefaultMarshaler{NotPersistentDeliveryMode: true},
			// The bench's durable direct exchange, whatever the topic; routing key = topic (the
			// realtime instance's id).
			Exchange: wamqp.ExchangeConfig{GenerateName: func(string) string { return exchange }, Type: "direct", Durable: true},
			Publish: wamqp.PublishConfig{
				GenerateRoutingKey: func(topic string) string { return topic },
				ConfirmDelivery:    true,
				// A pool: without one every Publish opens (and confirm-selects) a channel of its
				// own. The relay's calls run one per instance side by side.
				ChannelPoolSize: len(b.instances),
			},
			TopologyBuilder: &wamqp.DefaultTopologyBuilder{},
		}, watermill.NopLogger{})
		if err != nil {
			return nil, fmt.Errorf("watermill-amqp publisher: %w", err)
		}
		// watermill-amqp reports a nack as "delivery not confirmed for message [...]".
		refused := func(err error) bool { return err != nil && strings.Contains(err.Error(), "delivery not confirmed") }
		return &relayPublisher{pub: pub, refused: refused, close: pub.Close}, nil
	default:
		return nil, fmt.Errorf("unknown --publisher %q (want %s or %s)", kind, publisherOurs, publisherWatermill)
	}
}
