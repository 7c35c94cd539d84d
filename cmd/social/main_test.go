package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
)

const testSecret = "test-secret-test-secret-test-secret-0123"

// newTestApp returns an app writing to buffers.
// newTestApp is the binary's app writing its output to a buffer and its log to the test's log,
// shown if the test fails.
func newTestApp(t testing.TB) (*app, *bytes.Buffer) {
	var out bytes.Buffer
	return &app{stdout: &out, stderr: newTestLog(t, "social")}, &out
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":8080" || cfg.WSAddr != ":8081" || cfg.AMQPExchange != "social.feed" ||
		cfg.DatabaseURL != "postgres://postgres@127.0.0.1:5432/social?sslmode=disable" ||
		cfg.AMQPURL != "amqp://guest:guest@127.0.0.1:5672/" || cfg.JWTSecret != "" {
		t.Errorf("defaults: %+v", cfg)
	}
	for name, env := range map[string]map[string]string{
		"bad level":    {"LOG_LEVEL": "loud"},
		"bad duration": {"REQUEST_TIMEOUT": "soon"},
		"zero pool":    {"DB_MAX_CONNS": "0"},
		"short lease":  {"REALTIME_LEASE": "500ms"},
	} {
		if _, err := parseConfig(env); err == nil {
			t.Errorf("%s: accepted %v", name, env)
		}
	}
}

func TestConfigLogHidesSecrets(t *testing.T) {
	cfg, err := parseConfig(map[string]string{
		"JWT_SECRET":   "super-secret-value-super-secret-value",
		"DATABASE_URL": "postgres://u:dbpass@h/db",
		"AMQP_URL":     "amqp://u:mqpass@a:5672/,amqp://u:mqpass@b:5672/",
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	newLogger("info", &buf, false).Info("config", "config", cfg)
	for _, secret := range []string{"super-secret-value", "dbpass", "mqpass"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("log line shows %q: %s", secret, buf.String())
		}
	}
}

func TestAPIRequiresLongJWTSecret(t *testing.T) {
	db := pgtest.New(t)
	for name, secret := range map[string]string{"missing": "", "short": "only-31-bytes-long-secret-12345",
		"compose's old placeholder": "change-me-to-a-random-secret-of-32-bytes-or-more",
		"not random":                strings.Repeat("ab", 20)} {
		a, _ := newTestApp(t)
		err := a.run(context.Background(), []string{"api"}, map[string]string{
			"JWT_SECRET": secret, "DATABASE_URL": db.URL, "HTTP_ADDR": "127.0.0.1:0"})
		if err == nil || !strings.Contains(err.Error(), "JWT_SECRET") {
			t.Errorf("%s secret: err = %v, want a JWT_SECRET error", name, err)
		}
	}
}

func TestServicesRefuseOutdatedSchema(t *testing.T) {
	db := pgtest.NewEmpty(t)
	for _, cmd := range []string{"api", "dispatcher", "realtime"} {
		a, _ := newTestApp(t)
		err := a.run(context.Background(), []string{cmd}, map[string]string{
			"JWT_SECRET": testSecret, "DATABASE_URL": db.URL, "HTTP_ADDR": "127.0.0.1:0", "WS_ADDR": "127.0.0.1:0"})
		if !errors.Is(err, postgres.ErrSchemaOutdated) || !strings.Contains(err.Error(), "social migrate") {
			t.Errorf("%s on an empty database: err = %v, want ErrSchemaOutdated naming `social migrate`", cmd, err)
		}
	}
}

func TestMigrateIsIdempotentAndCreatesTheDatabase(t *testing.T) {
	db := pgtest.NewEmpty(t)
	// A database that does not exist yet: migrate creates it. pgtest drops it afterwards.
	fresh := strings.Replace(db.URL, db.Name, db.Name+"_fresh", 1)
	t.Cleanup(func() { db.Exec(t, "DROP DATABASE IF EXISTS "+db.Name+"_fresh WITH (FORCE)") })
	for range 2 {
		a, _ := newTestApp(t)
		if err := a.run(context.Background(), []string{"migrate"}, map[string]string{"DATABASE_URL": fresh}); err != nil {
			t.Fatal(err)
		}
	}
	pool, err := postgres.Open(context.Background(), fresh, postgres.PoolConfig{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := postgres.CheckSchema(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../../migrations/*.sql")
	if n != len(files) {
		t.Errorf("schema_migrations has %d rows, want %d (one per file)", n, len(files))
	}
}

// TestAllServesTheAPI runs `social all` as a user would, on a fresh database it migrates itself.
func TestAllServesTheAPI(t *testing.T) {
	db := pgtest.NewEmpty(t)
	addrs := make(chan net.Addr, 4)
	a, _ := newTestApp(t)
	a.onListen = func(name string, addr net.Addr) { addrs <- addr }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	var runErr error
	go func() {
		defer wg.Done()
		runErr = a.run(ctx, []string{"all"}, map[string]string{
			"DATABASE_URL": db.URL, "HTTP_ADDR": "127.0.0.1:0", "BCRYPT_COST": "4",
			"AMQP_EXCHANGE": amqptest.Exchange(t, "test.all.")})
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if runErr != nil {
			t.Errorf("all: %v", runErr)
		}
	})
	var base string
	select {
	case addr := <-addrs:
		base = "http://" + addr.String()
	case <-time.After(30 * time.Second):
		t.Fatal("social all did not start listening within 30s")
	}
	for _, path := range []string{"/healthz", "/openapi.yaml", "/metrics", "/"} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %s = %d", path, res.StatusCode)
		}
	}
	// HEAD answers like GET (curl -I http://localhost:8080/).
	for _, path := range []string{"/", "/static/js/main.js", "/healthz"} {
		res, err := http.Head(base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("HEAD %s = %d", path, res.StatusCode)
		}
	}
	res, err := http.Post(base+"/user/register", "application/json", strings.NewReader(
		`{"first_name":"A","second_name":"B","birthdate":"2000-01-01","biography":"","city":"","password":"12345678"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("register = %d", res.StatusCode)
	}
}

// TestAllTakesTheNextPortWhenTheDefaultIsTaken is `make run` on a machine where another program
// holds 8080 (issue #25): with HTTP_ADDR unset, all serves on the first free port after it and
// logs the page's URL; with HTTP_ADDR set to a taken port it fails at once, naming the variable,
// before migrating anything.
func TestAllTakesTheNextPortWhenTheDefaultIsTaken(t *testing.T) {
	// The other program: this test, unless one already holds 8080.
	if hold, err := net.Listen("tcp", ":8080"); err == nil {
		t.Cleanup(func() { hold.Close() })
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatal(err)
	}

	t.Run("HTTP_ADDR set", func(t *testing.T) {
		db := pgtest.NewEmpty(t)
		a, _ := newTestApp(t)
		err := a.run(context.Background(), []string{"all"}, map[string]string{
			"DATABASE_URL": db.URL, "HTTP_ADDR": ":8080", "AMQP_EXCHANGE": amqptest.Exchange(t, "test.all.")})
		if err == nil || !strings.Contains(err.Error(), "HTTP_ADDR=:8080") {
			t.Fatalf("all on a taken HTTP_ADDR = %v, want an error naming HTTP_ADDR=:8080", err)
		}
		if n := db.Count(t, "pg_tables", "tablename = 'schema_migrations'"); n != 0 {
			t.Error("all migrated the database before finding its port taken")
		}
	})

	t.Run("HTTP_ADDR unset", func(t *testing.T) {
		db := pgtest.NewEmpty(t)
		addrs := make(chan net.Addr, 4)
		var logs bytes.Buffer
		a := &app{stdout: io.Discard, stderr: &logs, onListen: func(_ string, addr net.Addr) { addrs <- addr }}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		done := make(chan error, 1)
		go func() {
			done <- a.run(ctx, []string{"all"}, map[string]string{
				"DATABASE_URL": db.URL, "BCRYPT_COST": "4", "AMQP_EXCHANGE": amqptest.Exchange(t, "test.all.")})
		}()
		var port int
		select {
		case addr := <-addrs:
			port = addr.(*net.TCPAddr).Port
		case err := <-done:
			t.Fatalf("all with 8080 taken and HTTP_ADDR unset: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("social all did not start listening within 30s")
		}
		if port <= 8080 || port > 8080+allPortTries {
			t.Errorf("all listens on port %d, want the first free one after 8080", port)
		}
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET /healthz = %d", res.StatusCode)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("all: %v", err)
		}
		if url := fmt.Sprintf("http://localhost:%d/", port); !strings.Contains(logs.String(), url) {
			t.Errorf("the log does not name %s:\n%s", url, logs.String())
		}
	})
}

// envNames lists the variables Config reads.
func envNames() map[string]bool {
	names := map[string]bool{}
	ct := reflect.TypeOf(Config{})
	for i := range ct.NumField() {
		if tag := ct.Field(i).Tag.Get("env"); tag != "" {
			names[strings.Split(tag, ",")[0]] = true
		}
	}
	return names
}

func TestComposeNamesOurServicesAndVariables(t *testing.T) {
	raw, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Healthcheck *struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
			Profiles []string `yaml:"profiles"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("compose.yaml does not parse: %v", err)
	}
	known := envNames()
	roles := map[string]int{}
	for name, svc := range compose.Services {
		if len(svc.Profiles) == 0 && name != "migrate" && svc.Healthcheck == nil {
			t.Errorf("service %s has no health check", name)
		}
		if svc.Image != "social:latest" {
			continue
		}
		if len(svc.Command) == 0 {
			t.Errorf("service %s: no command", name)
			continue
		}
		if len(svc.Profiles) == 0 {
			roles[svc.Command[0]]++
		}
		for k := range svc.Environment {
			if !known[k] {
				t.Errorf("service %s sets %s, which the binary does not read", name, k)
			}
		}
		for _, must := range []string{"DATABASE_URL", "AMQP_URL", "JWT_SECRET"} {
			if _, ok := svc.Environment[must]; !ok {
				t.Errorf("service %s does not set %s", name, must)
			}
		}
	}
	for role, want := range map[string]int{"migrate": 1, "api": 1, "dispatcher": 1, "realtime": 2} {
		if roles[role] != want {
			t.Errorf("default profile runs %d %s services, want %d", roles[role], role, want)
		}
	}
	for _, svc := range []string{"postgres", "rabbitmq"} {
		if _, ok := compose.Services[svc]; !ok {
			t.Errorf("compose.yaml lacks %s", svc)
		}
	}
}

// TestOnlyMainReadsTheEnvironment guards design.md §1: configuration is parsed once, in main.
func TestOnlyMainReadsTheEnvironment(t *testing.T) {
	re := regexp.MustCompile(`os\.(Getenv|LookupEnv|Environ)\(`)
	err := filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		allowed := strings.HasSuffix(path, filepath.Join("cmd", "social", "main.go")) ||
			strings.Contains(path, "pgtest") || strings.Contains(path, "amqptest") || strings.Contains(path, "testinfra") || strings.Contains(path, "socialbench")
		if re.Match(src) && !allowed {
			t.Errorf("%s reads the environment; only cmd/social/main.go may", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHealthcheckAsksPostgresForALogin: scripts/services asks `social healthcheck` whether user
// postgres logs in on a machine without psql; a refused login fails without showing a password.
func TestHealthcheckAsksPostgresForALogin(t *testing.T) {
	db := pgtest.New(t)
	a, _ := newTestApp(t)
	if err := a.run(context.Background(), []string{"healthcheck", db.URL}, nil); err != nil {
		t.Fatalf("healthcheck %s: %v", db.URL, err)
	}
	bad := strings.Replace(db.URL, "postgres@", "nobody:hunter2@", 1)
	a, _ = newTestApp(t)
	err := a.run(context.Background(), []string{"healthcheck", bad}, nil)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("healthcheck with a refused login: %v", err)
	}
}
