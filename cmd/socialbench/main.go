// Command socialbench measures the system against baselines run on the same machine in the same
// run, and prints our figures as ratios of them. Subcommands:
//
//	socialbench relay   outbox relay throughput vs raw amqp091-go one-message-per-follower
//	socialbench ws      idle websocket capacity and delivery latency vs a bare coder/websocket server
//	socialbench e2e     the whole system under open-loop load
//	socialbench fanout  realtime fan-out figures of issue #15, optionally beside Centrifugo
//	socialbench broker  RabbitMQ's own CPU per post for the contract's message and alternatives
//	socialbench churn   websocket connects+disconnects/s on one realtime vs raw queue.bind+unbind
//	socialbench failover  a broker connection cut under 10,000 sockets: sockets closed, recovery, gap fill
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	const usage = "usage: socialbench relay|ws|e2e|fanout|broker|churn|failover [flags] (-h for each)"
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "-h", "--help", "help":
		fmt.Println(usage + "\n\n" +
			"  relay   outbox relay throughput vs raw amqp091-go one-message-per-follower\n" +
			"  ws      idle websocket capacity and delivery latency vs a bare coder/websocket server\n" +
			"  e2e     the whole system under open-loop load\n" +
			"  fanout  realtime fan-out figures of issue #15, optionally beside Centrifugo\n" +
			"  broker  RabbitMQ's own CPU per post for the contract's message and alternatives\n" +
			"  churn   websocket connects+disconnects/s on one realtime vs raw queue.bind+unbind\n" +
			"  failover  a broker connection cut under 10,000 sockets: sockets closed, recovery, gap fill")
		return
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "relay":
		err = runRelay(ctx, args)
	case "ws":
		err = runWS(ctx, args)
	case "e2e":
		err = runE2E(ctx, args)
	case "fanout":
		err = runFanout(ctx, args)
	case "broker":
		err = runBroker(ctx, args)
	case "churn":
		err = runChurn(ctx, args)
	case "failover":
		err = runFailover(ctx, args)
	default:
		fmt.Fprintf(os.Stderr, "socialbench: unknown benchmark %q (want relay, ws, e2e, fanout, broker, churn or failover)\n", cmd)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return // -h: the flags were printed
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "socialbench:", err)
		os.Exit(1)
	}
}
