package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// system is the social service under test: either processes this benchmark started (on a fresh
// database and a unique exchange, both removed by stop) or a running system named by --target.
type system struct {
	cfg       e2eConfig
	apiURL    string
	wsURLs    []string
	instances []string // REALTIME_INSTANCE_ID of each wsURLs entry (the routing key); none for --target
	dbURL     string
	dbName    string // created here, dropped by stop
	exchange  string // declared by the system, deleted by stop
	jwtSecret string
	procs     []*sysProc
	tmp       string
}

type sysProc struct {
	role string
	cmd  *exec.Cmd
	logs *bytes.Buffer // stderr, shown when the process fails
	done chan struct{}
}

// startSystem builds cmd/social and starts it, or describes the --target system.
func startSystem(ctx context.Context, cfg e2eConfig) (*system, error) {
	if cfg.Target != "" {
		s := &system{cfg: cfg, apiURL: strings.TrimRight(cfg.Target, "/"), dbURL: cfg.DatabaseURL, jwtSecret: cfg.JWTSecret}
		s.wsURLs = []string{s.apiURL}
		if cfg.WSTargets != "" {
			s.wsURLs = strings.Split(cfg.WSTargets, ",")
		}
		return s, nil
	}
	tmp, err := os.MkdirTemp("", "socialbench-e2e-")
	if err != nil {
		return nil, err
	}
	s := &system{cfg: cfg, tmp: tmp}
	ok := false
	defer func() {
		if !ok {
			s.stop()
		}
	}()
	bin := cfg.Bin
	if bin == "" {
		bin = filepath.Join(tmp, "social")
		cfg.progress("building ./cmd/social")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/social")
		build.Dir = moduleRoot()
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/social: %w\n%s", err, out)
		}
	}
	suffix := randomHex(6)
	s.dbName = "socialbench_" + suffix
	s.exchange = "bench.feed." + suffix
	s.jwtSecret = randomHex(32)
	u, err := url.Parse(cfg.AdminURL)
	if err != nil {
		return nil, fmt.Errorf("--admin-url: %w", err)
	}
	u.Path = "/" + s.dbName
	s.dbURL = u.String()
	env := append(os.Environ(),
		"DATABASE_URL="+s.dbURL, "AMQP_URL="+cfg.AMQPURL, "AMQP_EXCHANGE="+s.exchange,
		"JWT_SECRET="+s.jwtSecret, "BCRYPT_COST=4", "LOG_LEVEL="+cmp.Or(os.Getenv("SOCIALBENCH_LOG_LEVEL"), "warn"),
		// The load is a few users doing what thousands would (a celebrity posting several times a
		// second, churn's users reconnecting in a loop): the per-user throttles are not what the
		// benchmarks measure.
		"POSTS_PER_USER=1000000", "WS_HANDSHAKES_PER_USER=1000000")

	// migrate creates the database (postgres.EnsureDatabase) and applies the schema.
	mig := exec.CommandContext(ctx, bin, "migrate")
	mig.Env = env
	if out, err := mig.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("social migrate: %w\n%s", err, out)
	}
	var ready []string
	if cfg.Mode == "all" {
		addr, id := freeAddr(), "rt-"+suffix+"-0"
		if err := s.spawn(bin, "all", env, "HTTP_ADDR="+addr, "DISPATCHER_ADDR="+freeAddr(), "WS_ADDR="+freeAddr(), "REALTIME_INSTANCE_ID="+id); err != nil {
			return nil, err
		}
		s.apiURL = "http://" + addr
		s.wsURLs = []string{s.apiURL}
		s.instances = []string{id}
		ready = append(ready, s.apiURL)
	} else {
		api, disp := freeAddr(), freeAddr()
		if err := s.spawn(bin, "api", env, "HTTP_ADDR="+api); err != nil {
			return nil, err
		}
		s.apiURL = "http://" + api
		ready = append(ready, s.apiURL)
		if !cfg.APIOnly {
			if err := s.spawn(bin, "dispatcher", env, "DISPATCHER_ADDR="+disp); err != nil {
				return nil, err
			}
			ready = append(ready, "http://"+disp)
		}
		for i := range cfg.Realtime * boolInt(!cfg.APIOnly) {
			// Unique per run: the instance's queue is named after it, and runs may share a broker.
			ws, id := freeAddr(), fmt.Sprintf("rt-%s-%d", suffix, i)
			if err := s.spawn(bin, "realtime", env, "WS_ADDR="+ws, "REALTIME_INSTANCE_ID="+id); err != nil {
				return nil, err
			}
			s.wsURLs = append(s.wsURLs, "http://"+ws)
			s.instances = append(s.instances, id)
			ready = append(ready, "http://"+ws)
		}
	}
	for _, r := range ready {
		if err := s.waitReady(ctx, r+"/readyz", 30*time.Second); err != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *system) spawn(bin, role string, env []string, extra ...string) error {
	cmd := exec.Command(bin, role)
	cmd.Env = append(append([]string(nil), env...), extra...)
	return s.spawnCmd(role, cmd)
}

// spawnCmd starts cmd as one of the system's processes (stopped with the others).
func (s *system) spawnCmd(role string, cmd *exec.Cmd) error {
	logs := &bytes.Buffer{}
	var out io.Writer = &limitedWriter{buf: logs, max: 64 << 10}
	// SOCIALBENCH_LOGS=DIR keeps every process's whole log in DIR/ROLE-N.log, for a run whose
	// figures need explaining.
	if dir := os.Getenv("SOCIALBENCH_LOGS"); dir != "" {
		if f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.log", role, len(s.procs)))); err == nil {
			out = io.MultiWriter(out, f)
		}
	}
	cmd.Stderr = out
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start social %s: %w", role, err)
	}
	p := &sysProc{role: role, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.procs = append(s.procs, p)
	return nil
}

// waitReady polls url until it answers 200, a process dies, or the deadline passes.
func (s *system) waitReady(ctx context.Context, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		for _, p := range s.procs {
			select {
			case <-p.done:
				return fmt.Errorf("social %s exited during start-up:\n%s", p.role, p.logs.String())
			default:
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s", url, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends the processes gracefully (SIGTERM, then SIGKILL after 10 s), drops the database and
// deletes the exchange it created.
func (s *system) stop() {
	for _, p := range s.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range s.procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.dbName != "" {
		if conn, err := pgx.Connect(ctx, s.cfg.AdminURL); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{s.dbName}.Sanitize()+" WITH (FORCE)")
			conn.Close(ctx)
		}
	}
	if s.exchange != "" {
		if conn, err := amqp091.Dial(s.cfg.AMQPURL); err == nil {
			if ch, err := conn.Channel(); err == nil {
				_ = ch.ExchangeDelete(s.exchange, false, false)
			}
			conn.Close()
		}
	}
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
}

// realtimePIDs are the processes that serve websockets (the one `all` process in all mode).
func (s *system) realtimePIDs() map[string]int {
	out := map[string]int{}
	i := 0
	for _, p := range s.procs {
		if p.role == "realtime" || p.role == "all" || p.role == "centrifugo" {
			out[fmt.Sprintf("%s#%d", p.role, i)] = p.cmd.Process.Pid
			i++
		}
	}
	return out
}

func (s *system) otherPIDs() map[string]int {
	out := map[string]int{}
	for _, p := range s.procs {
		if p.role == "api" || p.role == "dispatcher" {
			out[p.role] = p.cmd.Process.Pid
		}
	}
	return out
}

func (s *system) describe() e2eSystem {
	d := e2eSystem{Mode: s.cfg.Mode, API: s.apiURL, Realtime: len(s.wsURLs)}
	if s.cfg.Target != "" {
		d.Mode = "target"
	}
	return d
}

// moduleRoot finds the directory holding go.mod, so the build works from any working directory
// inside the module (tests run in cmd/socialbench).
func moduleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// limitedWriter keeps the first max bytes of a process's output.
type limitedWriter struct {
	buf *bytes.Buffer
	max int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if room := w.max - w.buf.Len(); room > 0 {
		if len(p) > room {
			w.buf.Write(p[:room])
		} else {
			w.buf.Write(p)
		}
	}
	return len(p), nil
}
