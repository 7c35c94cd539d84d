// Command social runs the social network: the REST API, the outbox dispatcher, the realtime
// websocket workers, and the operator tools. See design.md §1 and `social help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/term"
)

const usage = `social — a social network whose posts reach friends in real time

Usage: social <command> [flags]

Commands:
  all             migrate, then run api + dispatcher + realtime + web page in one process
  api             serve the REST API and the web page on HTTP_ADDR
  dispatcher      relay the outbox to RabbitMQ
  realtime        serve the websocket /post/feed/posted on WS_ADDR
  migrate         apply the embedded SQL migrations
  outbox status   show the outbox backlog (--json for machines)
  outbox replay   re-enqueue post events for relay (see --help)
  outbox retry-dead  move dead outbox rows back to pending
  healthcheck URL    exit 0 when URL answers 200 (container health checks)

Configuration comes from the environment: DATABASE_URL, AMQP_URL, JWT_SECRET, HTTP_ADDR,
WS_ADDR, LOG_LEVEL and more (README.md, "Configuration").
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	environ := make(map[string]string)
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		environ[k] = v
	}
	a := &app{stdout: os.Stdout, stderr: os.Stderr, stdoutTTY: term.IsTerminal(int(os.Stdout.Fd())),
		stderrTTY: term.IsTerminal(int(os.Stderr.Fd()))}
	if err := a.run(ctx, os.Args[1:], environ); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "social:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// app is one invocation of the binary: its configuration, logger and outputs.
type app struct {
	cfg       Config
	log       *slog.Logger
	stdout    io.Writer
	stderr    io.Writer
	stdoutTTY bool
	stderrTTY bool
	// onListen, when set, learns each server's address (tests listen on :0).
	onListen func(name string, addr net.Addr)
}

func (a *app) run(ctx context.Context, args []string, environ map[string]string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(a.stdout, usage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	if args[0] == "healthcheck" { // needs no configuration
		return runHealthcheck(ctx, args[1:])
	}
	cfg, err := parseConfig(environ)
	if err != nil {
		return err
	}
	a.cfg = cfg
	a.log = newLogger(cfg.LogLevel, a.stderr, a.stderrTTY)

	cmd, rest := args[0], args[1:]
	switch cmd {
	case "all":
		return a.runAll(ctx)
	case "api":
		return a.runAPI(ctx)
	case "dispatcher":
		return a.runDispatcher(ctx)
	case "realtime":
		return a.runRealtime(ctx)
	case "migrate":
		return a.runMigrate(ctx)
	case "outbox":
		return a.runOutbox(ctx, rest)
	}
	fmt.Fprintf(a.stderr, "social: unknown command %q\n\n%s", cmd, usage)
	return errUsage
}

// newLogger logs text to a terminal and JSON otherwise.
func newLogger(level string, w io.Writer, tty bool) *slog.Logger {
	lvl, _ := parseLevel(level) // validated by parseConfig
	opts := &slog.HandlerOptions{Level: lvl}
	if tty {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
