package amqp

import (
	"strings"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Broker is what a connection's server properties say about the broker at the other end.
type Broker struct {
	// Addr is the broker's address with the password redacted (for logs and status).
	Addr string
	// Product is the "product" server property ("RabbitMQ"), "" when absent.
	Product string
	// Version is the "version" server property as announced ("3.10.8", "4.0.5"), "" when absent.
	Version string
}

// String reads "RabbitMQ 3.10.8", or "unknown" when the broker announced nothing.
func (b Broker) String() string {
	s := strings.TrimSpace(b.Product + " " + b.Version)
	if s == "" {
		return "unknown"
	}
	return s
}

// BrokerOf reads the server properties of an open connection.
func BrokerOf(conn *amqp091.Connection, addr string) Broker {
	prop := func(k string) string {
		switch v := conn.Properties[k].(type) {
		case string:
			return v
		case []byte:
			return string(v)
		}
		return ""
	}
	return Broker{Addr: addr, Product: prop("product"), Version: prop("version")}
}
