package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// TestMain lets the test binary stand in for the social binary: with SOCIAL_TEST_RUN_MAIN=1 it
// runs main() on its arguments, so the CLI tests exercise the real process (exit status, stdout,
// stderr) without building anything.
func TestMain(m *testing.M) {
	if os.Getenv("SOCIAL_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// trap is a TCP listener that counts the connections made to it. Its address is given to a
// command as its database, broker or listen address: a command that touched any of them either
// connects (counted) or fails to listen on the port the trap holds (it exits non-zero).
type trap struct {
	ln    net.Listener
	conns atomic.Int64
}

func newTrap(t *testing.T) *trap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &trap{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tr.conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return tr
}

func (tr *trap) addr() string { return tr.ln.Addr().String() }

// commandPaths lists every command and subcommand of the binary, the root as "".
func commandPaths() []string {
	var out []string
	var walk func(c *cobra.Command, prefix string)
	walk = func(c *cobra.Command, prefix string) {
		out = append(out, prefix)
		for _, sub := range c.Commands() {
			walk(sub, strings.TrimSpace(prefix+" "+sub.Name()))
		}
	}
	walk((&app{}).rootCommand(nil), "")
	sort.Strings(out)
	return out
}

type process struct {
	stdout, stderr string
	code           int
}

// runBinary runs `social args...` as a process, with the traps as every address it could touch.
func runBinary(t *testing.T, db, mq, listen *trap, args ...string) process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = []string{"SOCIAL_TEST_RUN_MAIN=1", "PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=postgres://postgres@" + db.addr() + "/social?sslmode=disable&connect_timeout=1",
		"AMQP_URL=amqp://guest:guest@" + mq.addr() + "/",
		"HTTP_ADDR=" + listen.addr(), "WS_ADDR=" + listen.addr(), "DISPATCHER_ADDR=" + listen.addr(),
		"JWT_SECRET=" + testSecret, "LOG_LEVEL=debug"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("social %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("social %v still ran after 20s (it started something)", args)
	}
	return process{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// TestHelpOnEveryCommandTouchesNothing: -h, --help and `social help ...` on every command and
// subcommand print its usage, flags and environment, exit 0, and neither listen on a port nor
// connect to the database or the broker (the issue: `social all -h` started a server,
// `social migrate -h` migrated).
func TestHelpOnEveryCommandTouchesNothing(t *testing.T) {
	t.Parallel()
	db, mq, listen := newTrap(t), newTrap(t), newTrap(t)
	paths := commandPaths()
	for _, want := range []string{"", "all", "api", "dispatcher", "realtime", "migrate", "healthcheck",
		"outbox", "outbox status", "outbox replay", "outbox retry-dead", "help"} {
		if !contains(paths, want) {
			t.Errorf("no command %q in %q", want, paths)
		}
	}
	for _, path := range paths {
		words := strings.Fields(path)
		invocations := [][]string{append(words[:len(words):len(words)], "-h"), append(words[:len(words):len(words)], "--help")}
		if path != "" && path != "help" {
			invocations = append(invocations, append([]string{"help"}, words...))
		}
		for _, args := range invocations {
			p := runBinary(t, db, mq, listen, args...)
			name := strings.TrimSpace("social " + path)
			if p.code != 0 {
				t.Errorf("social %s: exit %d\n%s%s", strings.Join(args, " "), p.code, p.stdout, p.stderr)
				continue
			}
			if p.stderr != "" {
				t.Errorf("social %s wrote to stderr (a log line means it started): %s", strings.Join(args, " "), p.stderr)
			}
			for _, want := range []string{"Usage:\n  " + name, "\nFlags:\n", "-h, --help", "\nEnvironment:\n"} {
				if !strings.Contains(p.stdout, want) {
					t.Errorf("social %s: help lacks %q:\n%s", strings.Join(args, " "), want, p.stdout)
				}
			}
		}
	}
	// The help of each command names the variables it reads.
	for path, vars := range map[string][]string{
		"all":           {"DATABASE_URL", "AMQP_URL", "JWT_SECRET", "HTTP_ADDR", "REALTIME_LEASE"},
		"api":           {"DATABASE_URL", "JWT_SECRET", "HTTP_ADDR", "BCRYPT_COST"},
		"realtime":      {"AMQP_URL", "JWT_SECRET", "WS_ADDR", "WS_SEND_QUEUE_BYTES"},
		"dispatcher":    {"AMQP_URL", "DISPATCHER_ADDR", "AMQP_EXCHANGE"},
		"migrate":       {"DATABASE_URL"},
		"outbox status": {"DATABASE_URL", "AMQP_URL"},
		"outbox replay": {"DATABASE_URL"},
	} {
		p := runBinary(t, db, mq, listen, append(strings.Fields(path), "--help")...)
		_, env, _ := strings.Cut(p.stdout, "\nEnvironment:\n")
		for _, v := range vars {
			if !strings.Contains(env, "  "+v+" ") {
				t.Errorf("social %s --help does not list %s:\n%s", path, v, env)
			}
		}
	}
	if n := db.conns.Load() + mq.conns.Load() + listen.conns.Load(); n != 0 {
		t.Errorf("help made %d connections to the database, broker or listen address", n)
	}
}

// TestBadCommandLinesExit2AndTouchNothing: a mistake on the command line names the command,
// points to --help, exits 2 and starts nothing.
func TestBadCommandLinesExit2AndTouchNothing(t *testing.T) {
	t.Parallel()
	db, mq, listen := newTrap(t), newTrap(t), newTrap(t)
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"all", "extra"}, {"api", "--port", "1"}, {"migrate", "-x"},
		{"outbox"}, {"outbox", "frobnicate"}, {"outbox", "status", "--yaml"},
		{"outbox", "replay"}, {"outbox", "replay", "--from-position", "x"},
		{"outbox", "retry-dead", "--id", "0"}, {"healthcheck"}, {"healthcheck", "a", "b"},
	} {
		p := runBinary(t, db, mq, listen, args...)
		if p.code != 2 {
			t.Errorf("social %v: exit %d, want 2\n%s%s", args, p.code, p.stdout, p.stderr)
		}
		if !strings.Contains(p.stderr, "--help' for usage.") {
			t.Errorf("social %v: stderr does not point to --help: %q", args, p.stderr)
		}
	}
	if n := db.conns.Load() + mq.conns.Load() + listen.conns.Load(); n != 0 {
		t.Errorf("bad command lines made %d connections", n)
	}
}

func TestEveryVariableIsDocumentedForHelp(t *testing.T) {
	for name := range envNames() {
		if envDocs[name] == "" {
			t.Errorf("%s has no line in envDocs (cli.go): help would not explain it", name)
		}
	}
	var check func(c *cobra.Command)
	check = func(c *cobra.Command) {
		for _, name := range strings.Split(c.Annotations[envAnnotation], ",") {
			if name != "" && !envNames()[name] {
				t.Errorf("%s lists %s, which Config does not read", c.CommandPath(), name)
			}
		}
		for _, sub := range c.Commands() {
			check(sub)
		}
	}
	check((&app{}).rootCommand(nil))
}

// TestConfigIsLoggedOnceAtStart: the first line a command logs is every setting, secrets masked.
func TestConfigIsLoggedOnceAtStart(t *testing.T) {
	var stderr syncBuffer
	a := &app{stdout: &bytes.Buffer{}, stderr: &stderr}
	// migrate on an unreachable database: it logs the configuration, then fails to connect.
	err := a.run(context.Background(), []string{"migrate"}, map[string]string{
		"DATABASE_URL": "postgres://u:dbpass@127.0.0.1:1/social?sslmode=disable&connect_timeout=1",
		"AMQP_URL":     "amqp://u:mqpass@127.0.0.1:1/", "JWT_SECRET": "super-secret-value-super-secret-value"})
	if err == nil {
		t.Fatal("migrate succeeded on port 1")
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if !strings.Contains(lines[0], `"msg":"configuration"`) {
		t.Fatalf("first log line is not the configuration: %s", lines[0])
	}
	if n := strings.Count(stderr.String(), `"msg":"configuration"`); n != 1 {
		t.Errorf("configuration logged %d times", n)
	}
	for name := range envNames() {
		if !strings.Contains(lines[0], fmt.Sprintf("%q:", strings.ToLower(name))) {
			t.Errorf("configuration line lacks %s: %s", name, lines[0])
		}
	}
	for _, secret := range []string{"super-secret-value", "dbpass", "mqpass"} {
		if strings.Contains(stderr.String(), secret) {
			t.Errorf("log shows %q: %s", secret, lines[0])
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h/db":                      "postgres://u:xxxxx@h/db",
		"postgres://u@h/db?password=pw&sslmode=off": "postgres://u@h/db?password=xxxxx&sslmode=off",
		"host=h user=u password=pw dbname=d":        "host=h user=u password=xxxxx dbname=d",
		"host=h password='p w' dbname=d":            "host=h password=xxxxx dbname=d",
		"amqp://guest:guest@127.0.0.1:5672/":        "amqp://guest:xxxxx@127.0.0.1:5672/",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
