package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Throughput on a shared two-core machine moves with whatever else runs; the CPU time each party
// spends per post hardly does. So the relay benchmark also prints where the CPU went — the
// database's backends for the bench database, the broker's process and this process (relay,
// publishers and the counting consumer) — for the relay run and for the baseline, read from /proc
// (PostgreSQL and RabbitMQ must run on this machine; a party that cannot be found is left out).

// cpuSample is the CPU time (seconds) of each process of one party, by pid.
type cpuSample map[int]float64

// since is the CPU time used after earlier was taken (a process started since counts whole; one
// that exited in between is missed: the relay keeps its connections until it stops).
func (s cpuSample) since(earlier cpuSample) float64 {
	var t float64
	for pid, cpu := range s {
		t += cpu - earlier[pid]
	}
	return t
}

// cpuParties finds the processes to sample.
type cpuParties struct {
	pool   *pgxpool.Pool
	db     string
	broker int // pid listening on the AMQP port; 0 when not found
}

func newCPUParties(pool *pgxpool.Pool, db, amqpURL string) *cpuParties {
	return &cpuParties{pool: pool, db: db, broker: brokerPID(amqpURL)}
}

// brokerPID is the pid of the process listening on the AMQP URL's port on this machine, or 0.
func brokerPID(amqpURL string) int {
	u, err := url.Parse(amqpURL)
	if err != nil {
		return 0
	}
	port := u.Port()
	if port == "" {
		port = "5672"
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return 0
	}
	return listenerPID(n)
}

type cpuAccount struct{ db, broker, self cpuSample }

func (p *cpuParties) sample(ctx context.Context) cpuAccount {
	a := cpuAccount{db: cpuSample{}, broker: cpuSample{}, self: cpuSample{}}
	if rows, err := p.pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1`, p.db); err == nil {
		for rows.Next() {
			var pid int
			if rows.Scan(&pid) == nil {
				if _, cpu, ok := readProc(pid); ok {
					a.db[pid] = cpu
				}
			}
		}
		rows.Close()
	}
	for _, pid := range []int{p.broker, os.Getpid()} {
		if pid == 0 {
			continue
		}
		if _, cpu, ok := readProc(pid); ok {
			if pid == p.broker {
				a.broker[pid] = cpu
			} else {
				a.self[pid] = cpu
			}
		}
	}
	return a
}

// perThousand formats the CPU spent between two samples per 1,000 units of work.
func (a cpuAccount) perThousand(earlier cpuAccount, units int) string {
	f := func(s, e cpuSample) string {
		if len(s) == 0 {
			return "?"
		}
		return fmt.Sprintf("%.1f", s.since(e)*1e6/float64(units))
	}
	return fmt.Sprintf("database %s, broker %s, this process %s", f(a.db, earlier.db), f(a.broker, earlier.broker), f(a.self, earlier.self))
}

// listenerPID returns the pid of the process with a listening TCP socket on port, or 0.
func listenerPID(port int) int {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			if i := strings.LastIndexByte(fs[1], ':'); i >= 0 {
				if p, err := strconv.ParseInt(fs[1][i+1:], 16, 32); err == nil && int(p) == port {
					inodes["socket:["+fs[9]+"]"] = true
				}
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && inodes[l] {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			return pid
		}
	}
	return 0
}
