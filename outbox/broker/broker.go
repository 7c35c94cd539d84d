// Package broker is the outbox relay's publishing port: what the relay needs of a message broker,
// and nothing else. adapters/amqp implements it (its Publisher is also a Watermill
// message.Publisher for everything else); the relay's tests implement it with a fake.
//
// It is a package of its own, without dependencies, so that the adapter implements the port
// without importing the relay (and its database driver), and the relay depends on no adapter.
package broker

import (
	"context"
	"errors"
	"fmt"
)

// Publisher sends batches of messages and reports the broker's confirm of each one.
type Publisher interface {
	// Lanes is how many lanes Send spreads messages over (at least 1). Messages of one lane reach
	// each queue in the order they were sent, across calls; messages of different lanes may
	// reach it in any order.
	Lanes() int
	// Send writes msgs to exchange, in order, and returns without waiting for the broker, so
	// that a caller keeps several calls in flight; calls are written in call order. Every
	// returned Confirms must be waited for. ctx ends the wait early (the messages not confirmed
	// by then fail with ErrUnavailable).
	Send(ctx context.Context, exchange string, msgs []Message) Confirms
}

// Message is one message of a Send: one copy reaches every queue bound with RoutingKey or any
// key of CC (RabbitMQ's sender-selected distribution).
type Message struct {
	// MessageID is the event id (consumers dedupe by it).
	MessageID  string
	RoutingKey string
	// CC is the other recipients as the AMQP array of strings; nil for none. Send only reads it,
	// so one slice may be shared by every message to the same users.
	CC   []interface{}
	Body []byte
	// Lane picks the lane (modulo Lanes).
	Lane int
}

// Confirms is the broker's pending answer to one Send.
type Confirms interface {
	// Wait waits for the confirm of every message of the call. nil means all were confirmed. A
	// *SendError names the messages that were not, each failure wrapping ErrRefused or
	// ErrUnavailable; any other error failed every message of the call (as unavailable). Wait
	// may be called more than once.
	Wait() error
}

// The two ways a message can fail, for errors.Is.
var (
	// ErrRefused: the broker refused this message (a nack, e.g. a queue it routes to is full
	// with overflow reject-publish). The relay counts it as an attempt of the message's row:
	// retried with backoff, dead after its last attempt.
	ErrRefused = errors.New("refused by the broker")
	// ErrUnavailable: no confirm because the broker could not be reached, the connection
	// closed or the wait ended. The message may or may not have been routed. Not the row's
	// fault: the relay publishes it again (at-least-once) and counts no attempt.
	ErrUnavailable = errors.New("broker unavailable")
)

// SendError reports the messages of one Send that were not confirmed. Every message not listed in
// Failed was confirmed by the broker.
type SendError struct {
	// Failed maps the index of a message in the call to why it failed (wrapping ErrRefused or
	// ErrUnavailable).
	Failed map[int]error
}

func (e *SendError) Error() string {
	var first error
	for _, err := range e.Failed {
		first = err
		break
	}
	return fmt.Sprintf("%d message(s) not confirmed, e.g.: %v", len(e.Failed), first)
}

// Unwrap returns the distinct causes, so errors.Is(err, ErrRefused) works.
func (e *SendError) Unwrap() []error {
	var out []error
	seen := map[error]bool{}
	for _, err := range e.Failed {
		if !seen[err] {
			seen[err] = true
			out = append(out, err)
		}
	}
	return out
}
