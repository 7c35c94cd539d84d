package amqp

import (
	"fmt"
	"strconv"
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

// MaxFollowersPerMessage bounds the recipients of one message (routing key + CC): about 40 KB of
// CC header, well under the broker's frame size (design.md §7).
const MaxFollowersPerMessage = 1000

// MessageShape is how many followers one relayed message names on a given broker, and what the
// operator should know about that choice.
type MessageShape struct {
	// FollowersPerMessage is the routing key plus CC keys of one message, 1..MaxFollowersPerMessage.
	FollowersPerMessage int
	// Reason says in a few words why this shape was chosen (for the start-up log and status).
	Reason string
	// Warning is non-empty when the broker costs more than it should or its version could not be
	// read; the dispatcher logs it at level WARN.
	Warning string
}

// ShapeFor chooses the message shape for a broker by its announced product and version.
//
//   - RabbitMQ ≥ 3.11 looks each routing key up in an index on {exchange, key} (RabbitMQ PR 4606,
//     direct_exchange_routing_v2): one message names up to MaxFollowersPerMessage followers,
//     the broker copies it once per queue, and the cost does not grow with the bindings.
//   - RabbitMQ < 3.11 (Debian 12's 3.10.8) routes a message with several keys by scanning every
//     binding of the exchange for each key, so a CC message costs bindings × keys; a single-key
//     message is one lookup. One message per follower is the shape whose cost does not grow with
//     the number of online users (docs/performance.md, "Message shape by broker version").
//   - Anything else (no version, an unparseable one, another product) is treated as modern, with
//     a warning: RabbitMQ has always announced its version, the only versions known to be slow
//     announce it plainly, and the design's default is the CC shape.
func ShapeFor(b Broker) MessageShape {
	modern := MessageShape{FollowersPerMessage: MaxFollowersPerMessage,
		Reason: "routing key + CC, broker looks keys up by index"}
	if b.Product != "" && !strings.EqualFold(b.Product, "RabbitMQ") {
		modern.Warning = fmt.Sprintf("broker %q is not RabbitMQ; assuming it routes CC like RabbitMQ ≥ 3.11", b.String())
		return modern
	}
	v, ok := ParseVersion(b.Version)
	if !ok {
		modern.Warning = fmt.Sprintf("broker version %q not understood; assuming RabbitMQ ≥ 3.11 (CC fan-out)", b.Version)
		return modern
	}
	if v.AtLeast(3, 11) {
		return modern
	}
	return MessageShape{FollowersPerMessage: 1,
		Reason: "one message per follower, broker scans every binding per CC key",
		Warning: fmt.Sprintf("RabbitMQ %s routes a message with N keys by scanning every binding of the exchange per key; "+
			"relaying one message per follower instead; upgrade to RabbitMQ ≥ 3.11 for CC fan-out", b.Version)}
}

// Version is a broker version's numeric prefix: "4.1.0-rc.1" is {4, 1, 0}.
type Version struct{ Major, Minor, Patch int }

// AtLeast reports whether v is major.minor or later.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// ParseVersion reads "MAJOR.MINOR[.PATCH][suffix]" ("3.10.8", "4.1.0-rc.1", "3.13.1+dev"); a
// suffix after the numbers (pre-release, build) is ignored. ok is false for anything without at
// least MAJOR.MINOR.
func ParseVersion(s string) (v Version, ok bool) {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "-+ "); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, false
	}
	nums := make([]int, 3)
	for i, p := range parts {
		n, err := strconv.Atoi(p) // no sign can remain: the cut above stops at '-' and '+'
		if err != nil {
			return Version{}, false
		}
		nums[i] = n
	}
	return Version{nums[0], nums[1], nums[2]}, true
}
