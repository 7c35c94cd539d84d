package testinfra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const postgresOSUser = "postgres"

// Postgres is a private PostgreSQL server (initdb + pg_ctl) on a free port, trust auth on
// 127.0.0.1 only, that a test may stop and start at will.
type Postgres struct {
	Port int
	bin  string
	dir  string
}

// StartPostgres initialises and starts a private server and registers its removal. initdb
// refuses root, so as root the server runs as the postgres user in a directory it owns.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		t.Skip("no /usr/lib/postgresql/*/bin/pg_ctl")
	}
	sort.Strings(bins) // the newest major version sorts last (one- or two-digit majors alike here)
	dir, err := privateDir("social-faults-pg", postgresOSUser)
	if err != nil {
		t.Fatal(err)
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	p := &Postgres{Port: ports[0], bin: filepath.Dir(bins[len(bins)-1]), dir: dir}
	t.Cleanup(func() { p.destroy(t) })
	if out, err := p.run(2*time.Minute, "initdb", "-D", p.data(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v: %s", err, out)
	}
	p.Start(t)
	return p
}

func (p *Postgres) data() string { return filepath.Join(p.dir, "data") }

// URL is the address of database db on this server.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// Start starts the server (again) on its port and waits until it accepts connections.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	// fsync off: this server's data is thrown away after the test; it only has to come and go.
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100", p.Port, p.dir)
	if out, err := p.run(time.Minute, "pg_ctl", "-D", p.data(), "-l", filepath.Join(p.dir, "server.log"),
		"-o", opts, "-w", "-t", "50", "start"); err != nil {
		t.Fatalf("pg_ctl start: %v: %s", err, out)
	}
}

// Crash stops the server with -m immediate: no shutdown checkpoint, so the next Start runs crash
// recovery, which empties every unlogged table.
func (p *Postgres) Crash(t testing.TB) {
	t.Helper()
	if out, err := p.run(time.Minute, "pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "-t", "50", "stop"); err != nil {
		t.Fatalf("pg_ctl stop -m immediate: %v: %s", err, out)
	}
}

// Stop shuts the server down with -m fast: sessions are terminated, as in a crash of the
// database host seen from the clients (connections drop, new ones are refused).
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	if out, err := p.run(time.Minute, "pg_ctl", "-D", p.data(), "-m", "fast", "-w", "-t", "50", "stop"); err != nil {
		t.Fatalf("pg_ctl stop: %v: %s", err, out)
	}
}

func (p *Postgres) destroy(t testing.TB) {
	if _, err := os.Stat(filepath.Join(p.data(), "postmaster.pid")); err == nil {
		_ = p.signalAllErr(syscall.SIGCONT) // a test that failed while the server was frozen
		if out, err := p.run(time.Minute, "pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "stop"); err != nil {
			t.Logf("pg_ctl stop: %v: %s", err, out)
			if pid := readPid(filepath.Join(p.data(), "postmaster.pid")); pid > 0 {
				_ = killPid(pid)
			}
		}
	}
	if err := os.RemoveAll(p.dir); err != nil {
		t.Errorf("remove %s: %v", p.dir, err)
	}
}

func (p *Postgres) run(timeout time.Duration, tool string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := asUser(ctx, postgresOSUser, nil, filepath.Join(p.bin, tool), args...)
	cmd.Dir = p.dir
	return cmd.CombinedOutput()
}

// portString is for log messages.
func (p *Postgres) String() string { return "postgres on 127.0.0.1:" + strconv.Itoa(p.Port) }

// Freeze stops (SIGSTOP) the postmaster and every backend: the server is up but answers nothing,
// the hardest case for clients (no error, only silence). Thaw resumes it.
func (p *Postgres) Freeze(t testing.TB) { t.Helper(); p.signalAll(t, syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT).
func (p *Postgres) Thaw(t testing.TB) { t.Helper(); p.signalAll(t, syscall.SIGCONT) }

func (p *Postgres) signalAll(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.signalAllErr(sig); err != nil {
		t.Fatal(err)
	}
}

func (p *Postgres) signalAllErr(sig syscall.Signal) error {
	root := readPid(filepath.Join(p.data(), "postmaster.pid"))
	if root <= 0 {
		return fmt.Errorf("%s: no postmaster.pid", p)
	}
	pids := append([]int{root}, childrenOf(root)...)
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal %d: %w", pid, err)
		}
	}
	return nil
}

// childrenOf lists the direct children of pid from /proc.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the ")" closing the command name: state, ppid, ...
		s := string(b)
		rest := s[strings.LastIndexByte(s, ')')+1:]
		f := strings.Fields(rest)
		if len(f) > 1 {
			if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
				out = append(out, child)
			}
		}
	}
	return out
}
