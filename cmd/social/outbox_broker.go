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
// version and works out the message shape a dispatcher with this configuration chooses for it.
func (a *app) brokerStatus(ctx context.Context) outbox.BrokerStatus {
	var s outbox.BrokerStatus
	s.FollowersPerMessageSource = "automatic"
	if a.cfg.RelayFollowersPerMessage != 0 {
		s.FollowersPerMessageSource = "RELAY_FOLLOWERS_PER_MESSAGE"
		s.FollowersPerMessage = a.cfg.RelayFollowersPerMessage
		s.Shape = "set by RELAY_FOLLOWERS_PER_MESSAGE"
	}
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
	shape := chooseShape(a.cfg.RelayFollowersPerMessage, b)
	s.Reachable, s.Address, s.Product, s.Version = true, b.Addr, b.Product, b.Version
	s.FollowersPerMessage, s.Shape, s.Warning = shape.FollowersPerMessage, shape.Reason, shape.Warning
	return s
}

func printBroker(w io.Writer, b outbox.BrokerStatus) {
	if !b.Reachable {
		fmt.Fprintf(w, "broker version:         unknown (unreachable: %s)\n", oneLine(b.Error))
	} else {
		fmt.Fprintf(w, "broker version:         %s (%s)\n", amqpadapter.Broker{Product: b.Product, Version: b.Version}, b.Address)
	}
	switch {
	case b.FollowersPerMessage == 0:
		fmt.Fprintf(w, "followers per message:  automatic, by broker version (unknown until a broker answers)\n")
	case b.FollowersPerMessageSource == "automatic":
		fmt.Fprintf(w, "followers per message:  %d (automatic: %s)\n", b.FollowersPerMessage, b.Shape)
	default:
		fmt.Fprintf(w, "followers per message:  %d (%s)\n", b.FollowersPerMessage, b.Shape)
	}
	if b.Warning != "" {
		fmt.Fprintf(w, "warning:                %s\n", b.Warning)
	}
}
