// Command social runs the social network: the REST API, the outbox dispatcher, the realtime
// websocket workers, and the operator tools. See design.md §1 and `social --help`; the command
// tree is in cli.go.
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
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, err) // names the command and points to --help
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "social:", err)
		os.Exit(1)
	}
}

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

// newLogger logs text to a terminal and JSON otherwise.
func newLogger(level string, w io.Writer, tty bool) *slog.Logger {
	lvl, _ := parseLevel(level) // validated by parseConfig
	opts := &slog.HandlerOptions{Level: lvl}
	if tty {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
