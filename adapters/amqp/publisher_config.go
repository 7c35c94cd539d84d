package amqp

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/socialnet/social/outbox/broker"
)

// Message metadata read by Publisher. Any other metadata key becomes a string header.
const (
	// MetadataRoutingKey is the routing key of the message (the first follower's user id).
	MetadataRoutingKey = "amqp_routing_key"
	// MetadataCC holds the other recipients, comma-separated (user ids contain no commas). The
	// publisher writes them as the CC header, an array of strings, as sender-selected
	// distribution requires (a plain string header would be ignored by the broker).
	MetadataCC = "amqp_cc"
)

// Errors of Publish, for errors.Is. A PublishError says which messages each applies to. Each is
// also the outbox port's kind of failure (broker.ErrRefused, broker.ErrUnavailable), which is
// what the relay looks at.
var (
	// ErrNacked: the broker refused this message (basic.nack), e.g. a queue it routes to is full
	// with overflow reject-publish. Retrying the same message soon will likely fail again.
	ErrNacked error = &kindError{"rabbitmq refused the message (nack)", broker.ErrRefused}
	// ErrUnavailable: no confirm because the broker could not be reached, the connection or
	// channel closed, or the deadline passed. The message may or may not have been routed
	// (at-least-once: publish it again).
	ErrUnavailable error = &kindError{"rabbitmq unavailable", broker.ErrUnavailable}
	// ErrClosed: Publish after Close.
	ErrClosed error = &kindError{"publisher closed", broker.ErrUnavailable}
)

// kindError is one of the errors above: its own message, and the port's kind of failure.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// PublishError reports the messages of one Publish or Send call that were not confirmed. Every
// message not listed in Failed was confirmed (acked) by the broker. Failed maps the index of a
// message in the call to why it failed (wrapping ErrNacked or ErrUnavailable).
type PublishError = broker.SendError

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Dialer connects to the broker, failing over between the configured nodes. Required.
	Dialer *Dialer
	// ExchangeKind is the kind each topic (exchange) is declared with on connect; default direct.
	// Exchanges are durable and not auto-deleted.
	ExchangeKind string
	// ContentType of every message; default application/json.
	ContentType string
	// PublishTimeout is how long Publish waits without progress (a write accepted or a confirm
	// received) before it drops the connection and fails the unconfirmed messages with
	// ErrUnavailable. Default 30s. The first message's context also ends the call.
	PublishTimeout time.Duration
	// ReconnectBackoffMin and ReconnectBackoffMax bound the wait between failed connection
	// attempts (doubling). Within the wait Publish fails at once with ErrUnavailable instead of
	// blocking: the caller keeps its backlog and retries. Defaults 100ms and 2s (a dial to a down
	// node fails fast; a low cap reconnects soon after the broker is back).
	ReconnectBackoffMin, ReconnectBackoffMax time.Duration
	// Lanes is how many confirm-mode channels the publisher writes on (default 1, at most 64).
	// Send puts each message on the channel of its Outgoing.Lane; Publish uses lane 0. RabbitMQ
	// routes a message in the process of the channel it arrived on, so lanes spread routing over
	// the broker's cores: with RabbitMQ 3.10 a message with K CC keys costs a scan of every
	// binding per key, and one channel saturates one core long before the network or the queue.
	// The broker keeps order only within a channel: a caller must put every message whose
	// relative order matters on the same lane.
	Lanes int
	// Logger receives connection events; default slog.Default().
	Logger *slog.Logger
	// OnConnect, when set, is called with the broker of every new connection (the first and each
	// reconnect), under the publisher's lock: it must return quickly and not call the Publisher.
	OnConnect func(Broker)
}

func (c *PublisherConfig) setDefaults() {
	if c.ExchangeKind == "" {
		c.ExchangeKind = ExchangeKind
	}
	if c.ContentType == "" {
		c.ContentType = "application/json"
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 30 * time.Second
	}
	if c.ReconnectBackoffMin == 0 {
		c.ReconnectBackoffMin = 100 * time.Millisecond
	}
	if c.ReconnectBackoffMax == 0 {
		c.ReconnectBackoffMax = 2 * time.Second
	}
	if c.Lanes == 0 {
		c.Lanes = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every invalid field.
func (c PublisherConfig) Validate() error {
	var errs []error
	if c.Dialer == nil {
		errs = append(errs, errors.New("amqp publisher: Dialer is required"))
	}
	if c.PublishTimeout < 0 || c.ReconnectBackoffMin < 0 || c.ReconnectBackoffMax < c.ReconnectBackoffMin {
		errs = append(errs, errors.New("amqp publisher: timeouts must be positive and ReconnectBackoffMax >= ReconnectBackoffMin"))
	}
	if c.Lanes < 0 || c.Lanes > maxLanes {
		errs = append(errs, fmt.Errorf("amqp publisher: Lanes must be 1..%d", maxLanes))
	}
	return errors.Join(errs...)
}

// maxLanes bounds the channels of one publisher connection (each is an Erlang process with its
// own buffers on the broker; a handful already covers the broker's cores).
const maxLanes = 64
