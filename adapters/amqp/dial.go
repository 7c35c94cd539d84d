// Package amqp holds the RabbitMQ side of the feed (design.md §3): a Watermill message.Publisher
// for the outbox relay and a message.Subscriber for a realtime instance, on one direct exchange
// where the topic is the routing key: a realtime instance's id. Each instance has one exclusive
// queue bound with its own id only; users connecting and leaving never touch the broker.
package amqp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// The feed exchange: direct, routing key = a realtime instance's id.
const (
	DefaultExchange = "social.feed"
	exchangeKind    = "direct"
)

// ParseURLs splits a comma-separated AMQP_URL into broker addresses and checks each.
func ParseURLs(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, err := amqp091.ParseURI(p); err != nil {
			return nil, fmt.Errorf("AMQP_URL %q: %w", redact(p), err)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("AMQP_URL is empty")
	}
	return out, nil
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}

// Dialer connects to one of several brokers, starting after the one that worked last, so a
// process whose node died moves to the next node of the cluster.
type Dialer struct {
	urls []string
	// Timeout bounds each connection attempt (TCP + AMQP handshake).
	Timeout time.Duration

	mu   sync.Mutex
	next int
}

// NewDialer returns a Dialer over urls (see ParseURLs).
func NewDialer(urls []string) *Dialer {
	return &Dialer{urls: urls, Timeout: 5 * time.Second}
}

// Dial tries each broker once, in order starting after the last good one, and returns the first
// connection that opens together with its redacted address (for logs).
func (d *Dialer) Dial(ctx context.Context) (*amqp091.Connection, string, error) {
	conn, _, addr, err := d.dial(ctx, false)
	return conn, addr, err
}

// dialCorked is Dial with the socket wrapped so that the publisher can write a group of messages
// at once (corkConn).
func (d *Dialer) dialCorked(ctx context.Context) (*amqp091.Connection, *corkConn, string, error) {
	return d.dial(ctx, true)
}

func (d *Dialer) dial(ctx context.Context, corked bool) (*amqp091.Connection, *corkConn, string, error) {
	d.mu.Lock()
	start := d.next
	d.mu.Unlock()
	var errs []error
	for i := range d.urls {
		if err := ctx.Err(); err != nil {
			return nil, nil, "", err
		}
		idx := (start + i) % len(d.urls)
		u := d.urls[idx]
		dial := amqp091.DefaultDial(d.Timeout)
		var cork *corkConn
		if corked {
			tcp := dial
			dial = func(network, addr string) (net.Conn, error) {
				c, err := tcp(network, addr)
				if err != nil {
					return nil, err
				}
				cork = &corkConn{Conn: c}
				return cork, nil
			}
		}
		conn, err := amqp091.DialConfig(u, amqp091.Config{
			Heartbeat: 10 * time.Second,
			Locale:    "en_US",
			Dial:      dial,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", redact(u), err))
			continue
		}
		d.mu.Lock()
		// Next time start with the following node: if this one dies, we move on at once.
		d.next = (idx + 1) % len(d.urls)
		d.mu.Unlock()
		return conn, cork, redact(u), nil
	}
	return nil, nil, "", fmt.Errorf("dial rabbitmq: %w", errors.Join(errs...))
}

// Probe connects to one of the brokers, reads what it announces about itself and disconnects: for
// a process that only reports (social outbox status), not one that publishes.
func (d *Dialer) Probe(ctx context.Context) (Broker, error) {
	conn, addr, err := d.Dial(ctx)
	if err != nil {
		return Broker{}, err
	}
	b := BrokerOf(conn, addr)
	_ = conn.CloseDeadline(time.Now().Add(time.Second))
	return b, nil
}
