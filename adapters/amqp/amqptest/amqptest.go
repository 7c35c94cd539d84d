// Package amqptest gives tests their broker (TEST_AMQP_URL) and exchange names of their own,
// deleted when the test ends, so tests run in parallel and leave nothing behind on the broker.
package amqptest

import (
	"net"
	"net/url"
	"os"
	"testing"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// DefaultURL is the broker tests use when TEST_AMQP_URL is unset: the machine's RabbitMQ.
// `make test` sets TEST_AMQP_URL to a RabbitMQ 4 node (scripts/rabbitmq4), `make test-floor` to
// the machine's 3.10.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// URL is the broker every test uses: TEST_AMQP_URL, or DefaultURL.
func URL() string {
	if u := os.Getenv("TEST_AMQP_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Addr is URL's host:port (the port defaults to 5672, 5671 for amqps), for proxies in front of
// the test broker.
func Addr() string {
	u, err := url.Parse(URL())
	if err != nil {
		panic("TEST_AMQP_URL: " + err.Error())
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "5672"
	if u.Scheme == "amqps" {
		port = "5671"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// URLVia is URL with its host:port replaced by addr (a proxy's, or a dead port's): same
// credentials and virtual host, another way to the broker.
func URLVia(addr string) string {
	u, err := url.Parse(URL())
	if err != nil {
		panic("TEST_AMQP_URL: " + err.Error())
	}
	u.Host = addr
	return u.String()
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
