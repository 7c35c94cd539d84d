// Package amqptest gives tests the local RabbitMQ and exchange names of their own, deleted when
// the test ends, so tests run in parallel and leave nothing behind on the broker.
package amqptest

import (
	"os"
	"testing"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// URL is the broker tests use: TEST_AMQP_URL, or the local RabbitMQ.
func URL() string {
	if u := os.Getenv("TEST_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// Exchange returns a fresh exchange name starting with prefix ("test.feed." if empty) and deletes
// that exchange (whoever declared it) when the test ends.
func Exchange(tb testing.TB, prefix string) string {
	tb.Helper()
	if prefix == "" {
		prefix = "test.feed."
	}
	name := prefix + uuid.NewString()
	tb.Cleanup(func() { DeleteExchange(tb, name) })
	return name
}

// DeleteExchange removes an exchange; an unreachable broker is reported, not fatal.
func DeleteExchange(tb testing.TB, name string) {
	conn, err := amqp091.Dial(URL())
	if err != nil {
		tb.Logf("delete exchange %s: %v", name, err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		tb.Logf("delete exchange %s: %v", name, err)
		return
	}
	if err := ch.ExchangeDelete(name, false, false); err != nil {
		tb.Logf("delete exchange %s: %v", name, err)
	}
}
