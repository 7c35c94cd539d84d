package main

import (
	"context"
	"fmt"
	"io"
	"time"

	amqpadapter "github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/outbox"
)

// brokerProbeTimeout bounds status's own connection to each broker: status reports the database
// even when the broker is down, and says so rather than hanging.
const brokerProbeTimeout = 3 * time.Second

// brokerStatus connects to AMQP_URL (each node once, brokerProbeTimeout each), reads the broker's
// version (logged by every process at start; the message shape does not depend on it).
func (a *app) brokerStatus(ctx context.Context) outbox.BrokerStatus {
	var s outbox.BrokerStatus
	urls, err := amqpadapter.ParseURLs(a.cfg.AMQPURL)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	d := amqpadapter.NewDialer(urls)
	d.Timeout = brokerProbeTimeout
	b, err := d.Probe(ctx)
	if err != nil {
		s.Address, s.Error = redactURL(urls[0]), err.Error()
		return s
	}
	s.Reachable, s.Address, s.Product, s.Version = true, b.Addr, b.Product, b.Version
	return s
}

func printBroker(w io.Writer, b outbox.BrokerStatus) {
	if !b.Reachable {
		fmt.Fprintf(w, "broker version:         unknown (unreachable: %s)\n", oneLine(b.Error))
	} else {
		fmt.Fprintf(w, "broker version:         %s (%s)\n", amqpadapter.Broker{Product: b.Product, Version: b.Version}, b.Address)
	}
}
