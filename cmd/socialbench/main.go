// Command socialbench measures the system against baselines run on the same machine in the same
// run, and prints our figures beside them; docs/performance.md gives each subcommand's command
// and current figures. Every subcommand defaults to the tests' RabbitMQ 4 node (--amqp-url) and
// the local PostgreSQL (--admin-url).
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

var subcommands = []struct {
	name, what string
	run        func(context.Context, []string) error
}{
	{"broker", "RabbitMQ's own CPU per post: one message per instance vs the CC message", runBroker},
	{"relay", "outbox relay throughput vs raw amqp091-go one message per follower; watermill-amqp beside ours", runRelay},
	{"fanout", "one author's posts to 1,000 sockets: highest rate, latency, first socket; beside Centrifugo", runFanout},
	{"churn", "websocket connects+disconnects/s on one realtime vs raw queue.bind+unbind", runChurn},
	{"failover", "a broker connection cut under 10,000 sockets: sockets closed, first live frame, gap fill", runFailover},
	{"ws", "idle websocket memory and delivery latency vs a bare coder/websocket server", runWS},
	{"e2e", "the whole system under open-loop load vs the post transaction's SQL through pgx", runE2E},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	usage := func(w *os.File) {
		fmt.Fprintln(w, "usage: socialbench SUBCOMMAND [flags] (-h for each)")
		for _, s := range subcommands {
			fmt.Fprintf(w, "  %-9s %s\n", s.name, s.what)
		}
	}
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	for _, s := range subcommands {
		if s.name != os.Args[1] {
			continue
		}
		err := s.run(ctx, os.Args[2:])
		if errors.Is(err, flag.ErrHelp) {
			return // -h: the flags were printed
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "socialbench:", err)
			os.Exit(1)
		}
		return
	}
	if h := os.Args[1]; h == "-h" || h == "--help" || h == "help" {
		usage(os.Stdout)
		return
	}
	fmt.Fprintf(os.Stderr, "socialbench: unknown subcommand %q\n", os.Args[1])
	usage(os.Stderr)
	os.Exit(2)
}
