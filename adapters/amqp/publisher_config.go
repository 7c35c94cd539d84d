package amqp

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Errors of Publish, for errors.Is. A PublishError says which messages each applies to.
var (
	// ErrNacked: the broker refused this message (basic.nack). Retrying the same message soon
	// will likely fail again (IsRefused).
	ErrNacked = errors.New("rabbitmq refused the message (nack)")
	// ErrUnavailable: no confirm because the broker could not be reached, the connection or
	// channel closed, or the deadline passed. The message may or may not have been routed
	// (at-least-once: publish it again).
	ErrUnavailable = errors.New("rabbitmq unavailable")
	// ErrClosed: Publish after Close.
	ErrClosed = fmt.Errorf("%w: publisher closed", ErrUnavailable)
)

// IsRefused says whether a Publish error is the broker refusing messages (a nack) and nothing
// else: the outbox relay counts it as an attempt of the messages' rows. A call where any message
// went unconfirmed for want of the broker is not refused: its rows are released, no attempt
// counted, and the relay backs off (an outage must never park rows as dead).
func IsRefused(err error) bool {
	var pe *PublishError
	if errors.As(err, &pe) {
		for _, e := range pe.Failed {
			if !errors.Is(e, ErrNacked) {
				return false
			}
		}
		return len(pe.Failed) > 0
	}
	return errors.Is(err, ErrNacked)
}

// PublishError reports the messages of one Publish call that were not confirmed. Every message not
// listed in Failed was confirmed (acked) by the broker.
type PublishError struct {
	// Failed maps the index of a message in the call to why it failed (wrapping ErrNacked or
	// ErrUnavailable).
	Failed map[int]error
}

func (e *PublishError) Error() string {
	for _, err := range e.Failed {
		return fmt.Sprintf("%d message(s) not confirmed, e.g.: %v", len(e.Failed), err)
	}
	return "no message failed"
}

// Unwrap returns the distinct causes, so errors.Is(err, ErrNacked) works.
func (e *PublishError) Unwrap() []error {
	var out []error
	for _, err := range e.Failed {
		out = append(out, err)
	}
	return out
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Dialer connects to the broker, failing over between the configured nodes. Required.
	Dialer *Dialer
	// Exchange is the direct exchange every message goes to, routing key = the Publish topic
	// (a realtime instance's id); declared durable once per connection. Default "social.feed".
	Exchange string
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
	// Logger receives connection events; default slog.Default().
	Logger *slog.Logger
}

func (c *PublisherConfig) setDefaults() {
	if c.Exchange == "" {
		c.Exchange = DefaultExchange
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
	return errors.Join(errs...)
}
