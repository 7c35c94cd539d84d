package bench

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// SystemConfig says which `social` processes to start.
type SystemConfig struct {
	Services
	Bin          string // a prebuilt social binary; "" builds ./cmd/social into the system's directory
	All          bool   // one `social all` process instead of api, dispatcher and realtime
	NoDispatcher bool   // no `social dispatcher` (a benchmark that posts nothing, or feeds another server)
	Realtime     int    // `social realtime` instances started with the system (AddRealtime adds more)
	// Log reports progress; nil is silent.
	Log func(format string, args ...any) `json:"-"`
}

// Flags registers --amqp-url, --admin-url and --bin.
func (c *SystemConfig) Flags(fs *flag.FlagSet) {
	c.Services.Flags(fs)
	fs.StringVar(&c.Bin, "bin", "", "prebuilt social binary (default: go build ./cmd/social)")
}

// System is `social` under test, started as it runs in production (its own processes, configured
// by the environment) on a fresh database and a fresh exchange, both removed by Stop.
type System struct {
	cfg    SystemConfig
	APIURL string
	WSURLs []string // the realtime instances' base URLs (`all`: the api's)
	// DispatcherURL serves the relay's /metrics ("" without a dispatcher).
	DispatcherURL string
	Instances     []string // REALTIME_INSTANCE_ID of each WSURLs entry: its queue's routing key
	DBURL         string
	DBName        string
	Exchange      string
	JWTSecret     string
	Dir           string // temporary: the built binary and files of other servers; removed by Stop

	bin, suffix string
	env         []string
	procs       []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	logs *bytes.Buffer // the first 64 KiB of its output, shown when it fails to start
	done chan struct{}
}

// Build compiles ./cmd/social of this module into dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "social")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/social")
	build.Dir = moduleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/social: %w\n%s", err, out)
	}
	return bin, nil
}

// StartSystem migrates a fresh database (`social migrate` creates it) and starts the processes
// cfg names, each on a free loopback port, and waits until every one is ready.
func StartSystem(ctx context.Context, cfg SystemConfig) (*System, error) {
	dir, err := os.MkdirTemp("", "socialbench-")
	if err != nil {
		return nil, err
	}
	s := &System{cfg: cfg, Dir: dir, bin: cfg.Bin, suffix: RandomHex(6)}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()
	if s.bin == "" {
		s.progress("building ./cmd/social")
		if s.bin, err = Build(ctx, dir); err != nil {
			return nil, err
		}
	}
	s.DBName, s.Exchange, s.JWTSecret = "socialbench_"+s.suffix, "bench.feed."+s.suffix, RandomHex(32)
	u, err := url.Parse(cfg.AdminURL)
	if err != nil {
		return nil, fmt.Errorf("--admin-url: %w", err)
	}
	u.Path = "/" + s.DBName
	s.DBURL = u.String()
	// Every client of a benchmark comes from one address, loopback: the per-address socket bound
	// (1,000 by default) would refuse the 1,001st. And the load is a few users doing what thousands
	// would (a celebrity posting several times a second, churn's users reconnecting in a loop): the
	// per-user throttles are not what the benchmarks measure. SOCIALBENCH_LOG_LEVEL=info shows the processes'
	// logs (with SOCIALBENCH_LOGS=DIR, in files).
	s.env = append(os.Environ(), "DATABASE_URL="+s.DBURL, "AMQP_URL="+cfg.AMQPURL, "AMQP_EXCHANGE="+s.Exchange,
		"JWT_SECRET="+s.JWTSecret, "BCRYPT_COST=4", "WS_MAX_SOCKETS_PER_ADDRESS=1000000",
		"POSTS_PER_USER=1000000", "WS_HANDSHAKES_PER_USER=1000000", "FOLLOWS_PER_USER=1000000",
		"LOG_LEVEL="+cmp.Or(os.Getenv("SOCIALBENCH_LOG_LEVEL"), "warn"))
	mig := exec.CommandContext(ctx, s.bin, "migrate")
	mig.Env = s.env
	if out, err := mig.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("social migrate: %w\n%s", err, out)
	}
	// Every process starts at once; then each must become ready.
	var ready []string
	start := func(name, role, addr string, extra ...string) error {
		ready = append(ready, "http://"+addr+"/readyz")
		return s.spawnRole(name, role, extra...)
	}
	if cfg.All {
		addr, disp, id := FreeAddr(), FreeAddr(), s.instanceID()
		if err := start("all", "all", addr, "HTTP_ADDR="+addr, "DISPATCHER_ADDR="+disp, "WS_ADDR="+FreeAddr(), "REALTIME_INSTANCE_ID="+id); err != nil {
			return nil, err
		}
		s.DispatcherURL = "http://" + disp
		s.APIURL = "http://" + addr
		s.WSURLs, s.Instances = []string{s.APIURL}, []string{id}
	} else {
		api := FreeAddr()
		if err := start("api", "api", api, "HTTP_ADDR="+api); err != nil {
			return nil, err
		}
		s.APIURL = "http://" + api
		if disp := FreeAddr(); !cfg.NoDispatcher {
			if err := start("dispatcher", "dispatcher", disp, "DISPATCHER_ADDR="+disp); err != nil {
				return nil, err
			}
			s.DispatcherURL = "http://" + disp
		}
		for range cfg.Realtime {
			url, err := s.spawnRealtime("")
			if err != nil {
				return nil, err
			}
			ready = append(ready, url)
		}
	}
	for _, r := range ready {
		if err := s.WaitReady(ctx, r, 30*time.Second); err != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

// AddRealtime starts one more `social realtime`, reaching RabbitMQ at amqpURL ("" for the
// system's broker; a proxy in the way for a failover).
func (s *System) AddRealtime(ctx context.Context, amqpURL string) error {
	url, err := s.spawnRealtime(amqpURL)
	if err != nil {
		return err
	}
	return s.WaitReady(ctx, url, 30*time.Second)
}

// spawnRealtime starts `social realtime` and returns its readiness URL.
func (s *System) spawnRealtime(amqpURL string) (string, error) {
	addr, id := FreeAddr(), s.instanceID()
	if err := s.spawnRole(fmt.Sprintf("realtime#%d", len(s.Instances)), "realtime",
		"AMQP_URL="+cmp.Or(amqpURL, s.cfg.AMQPURL), "WS_ADDR="+addr, "REALTIME_INSTANCE_ID="+id); err != nil {
		return "", err
	}
	s.WSURLs, s.Instances = append(s.WSURLs, "http://"+addr), append(s.Instances, id)
	return "http://" + addr + "/readyz", nil
}

// instanceID is unique per run and instance: an instance's queue is named after it, and runs
// may share a broker.
func (s *System) instanceID() string { return fmt.Sprintf("rt-%s-%d", s.suffix, len(s.Instances)) }

// spawnRole runs `social role` with the system's environment and extra (later entries win).
func (s *System) spawnRole(name, role string, extra ...string) error {
	cmd := exec.Command(s.bin, role)
	cmd.Env = append(slices.Clone(s.env), extra...)
	return s.Spawn(name, cmd)
}

// Spawn starts cmd as one of the system's processes, named name (its PIDs key), stopped by Stop.
// SOCIALBENCH_LOGS=DIR keeps every process's whole output in DIR/NAME.log.
func (s *System) Spawn(name string, cmd *exec.Cmd) error {
	logs := &bytes.Buffer{}
	var out io.Writer = &limitedWriter{buf: logs, max: 64 << 10}
	if dir := os.Getenv("SOCIALBENCH_LOGS"); dir != "" {
		if f, err := os.Create(filepath.Join(dir, name+".log")); err == nil {
			out = io.MultiWriter(out, f)
		}
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.procs = append(s.procs, p)
	return nil
}

// WaitReady polls url until it answers 200, a process of the system exits, or within passes.
func (s *System) WaitReady(ctx context.Context, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		for _, p := range s.procs {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited:\n%s", p.name, p.logs.String())
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

// PIDs are the system's processes by name: api, dispatcher, realtime#0…, all, and those Spawn added.
func (s *System) PIDs() map[string]int {
	out := map[string]int{}
	for _, p := range s.procs {
		out[p.name] = p.cmd.Process.Pid
	}
	return out
}

// Stop ends the processes (SIGTERM, SIGKILL after 10 s), drops the database, deletes the exchange
// and the directory.
func (s *System) Stop() {
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
	if s.DBName != "" {
		DropDatabase(s.cfg.AdminURL, s.DBName)
	}
	if s.Exchange != "" {
		if conn, err := amqp091.Dial(s.cfg.AMQPURL); err == nil {
			if ch, err := conn.Channel(); err == nil {
				_ = ch.ExchangeDelete(s.Exchange, false, false)
			}
			conn.Close()
		}
	}
	os.RemoveAll(s.Dir)
}

func (s *System) progress(format string, args ...any) {
	if s.cfg.Log != nil {
		s.cfg.Log(format, args...)
	}
}

// CreateDatabase creates an empty database named socialbench_… on adminURL's server and returns
// its name and URL; DropDatabase removes it.
func CreateDatabase(ctx context.Context, adminURL string) (name, dbURL string, err error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", "", fmt.Errorf("--admin-url: %w", err)
	}
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", "", fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer admin.Close(context.Background())
	name = "socialbench_" + RandomHex(6)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", "", fmt.Errorf("create database: %w", err)
	}
	u.Path = "/" + name
	return name, u.String(), nil
}

// DropDatabase drops name, whoever is connected to it.
func DropDatabase(adminURL, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, adminURL); err == nil {
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		conn.Close(ctx)
	}
}

// moduleRoot is the directory holding go.mod, so the build works from any directory inside the
// module (tests run in cmd/socialbench).
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

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

// RandomHex is n random bytes in hex: unique names for databases, exchanges and secrets.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// limitedWriter keeps the first max bytes written to it.
type limitedWriter struct {
	buf *bytes.Buffer
	max int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if room := w.max - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
