package main

import (
	"bytes"
	"context"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat (100 on Linux everywhere).
const clockTicks = 100

// procSampler reads RSS and CPU time of the system's processes from /proc every 250 ms, and the
// machine's busy share from /proc/stat (other engineers' tests run on this box: it shows noise).
type procSampler struct {
	realtime, others map[string]int
	mu               sync.Mutex
	samples          []procSample
	cancel           context.CancelFunc
	done             chan struct{}
}

type procSample struct {
	at        time.Time
	rss       map[string]int64 // bytes
	cpu       map[string]float64
	busy, all float64 // machine jiffies
}

// procStat is a process's figures over a phase.
type procStat struct {
	Name      string  `json:"name"`
	PID       int     `json:"pid,omitempty"`
	CPUPct    float64 `json:"cpu_pct"` // of one core
	MaxRSSMiB float64 `json:"max_rss_mib"`
}

func newProcSampler(realtime, others map[string]int) *procSampler {
	return &procSampler{realtime: realtime, others: others, done: make(chan struct{})}
}

func (s *procSampler) snapshot() procSample {
	ps := procSample{at: time.Now(), rss: map[string]int64{}, cpu: map[string]float64{}}
	for _, m := range []map[string]int{s.realtime, s.others} {
		for name, pid := range m {
			rss, cpu, ok := readProc(pid)
			if ok {
				ps.rss[name], ps.cpu[name] = rss, cpu
			}
		}
	}
	ps.busy, ps.all = readMachine()
	return ps
}

func (s *procSampler) start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			ps := s.snapshot()
			s.mu.Lock()
			s.samples = append(s.samples, ps)
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (s *procSampler) stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
}

// window summarizes the samples between from and to: average CPU and peak RSS per process, and
// the machine's busy share as "machine".
func (s *procSampler) window(from, to time.Time) []procStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	var in []procSample
	for _, ps := range s.samples {
		if !ps.at.Before(from) && !ps.at.After(to) {
			in = append(in, ps)
		}
	}
	if len(in) < 2 {
		return nil
	}
	first, last := in[0], in[len(in)-1]
	secs := last.at.Sub(first.at).Seconds()
	var out []procStat
	for name, cpu := range last.cpu {
		st := procStat{Name: name, PID: s.realtime[name] + s.others[name], CPUPct: 100 * (cpu - first.cpu[name]) / secs}
		for _, ps := range in {
			st.MaxRSSMiB = max(st.MaxRSSMiB, float64(ps.rss[name])/(1<<20))
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if all := last.all - first.all; all > 0 {
		out = append(out, procStat{Name: "machine (all cores, % of one)", CPUPct: 100 * float64(nproc()) * (last.busy - first.busy) / all})
	}
	return out
}

// connMemory is the realtime instances' memory with the benchmark's sockets open.
type connMemory struct {
	Sockets     int     `json:"sockets"`
	IdleRSSMiB  float64 `json:"idle_rss_mib"`
	RSSMiB      float64 `json:"rss_mib"`
	BytesPerCon float64 `json:"bytes_per_connection"`
	// ConnectSeconds is how long opening them took (each user's first socket waits for its presence write).
	ConnectSeconds float64 `json:"connect_s"`
}

// memoryPerConn compares the realtime processes' RSS before (idle) and after connecting.
func (s *procSampler) memoryPerConn(idle procSample, perInstance []int) connMemory {
	time.Sleep(500 * time.Millisecond) // let the last upgrades' buffers settle
	now := s.snapshot()
	var m connMemory
	for _, n := range perInstance {
		m.Sockets += n
	}
	for name := range s.realtime {
		m.IdleRSSMiB += float64(idle.rss[name]) / (1 << 20)
		m.RSSMiB += float64(now.rss[name]) / (1 << 20)
	}
	if m.Sockets > 0 && len(s.realtime) > 0 {
		m.BytesPerCon = (m.RSSMiB - m.IdleRSSMiB) * (1 << 20) / float64(m.Sockets)
	}
	return m
}

// readProc returns a process's resident set (bytes) and CPU time (seconds).
func readProc(pid int) (int64, float64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15, rss 24.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 {
		return 0, 0, false
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	rssPages, _ := strconv.ParseInt(f[21], 10, 64)
	return rssPages * int64(os.Getpagesize()), (ut + st) / clockTicks, true
}

// readMachine returns busy and total jiffies of all CPUs.
func readMachine() (busy, all float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		all += x
		if i != 3 && i != 4 { // idle, iowait
			busy += x
		}
	}
	return busy, all
}

func nproc() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 1
	}
	// Every processor's paragraph starts with "processor"; the first one starts the file (counting
	// "\nprocessor" alone said 1 on two cores, halving "machine (all cores, % of one)").
	n := bytes.Count(b, []byte("\nprocessor"))
	if bytes.HasPrefix(b, []byte("processor")) {
		n++
	}
	return max(1, n)
}

// outboxLag polls the outbox every 100 ms: pending rows and the age of the oldest.
type outboxLag struct {
	mu      sync.Mutex
	points  []lagPoint
	last    int64
	cancel  context.CancelFunc
	done    chan struct{}
	pollErr error
}

type lagPoint struct {
	at      time.Time
	pending int64
	ageMs   float64
}

// lagStats is the outbox backlog over a phase.
type lagStats struct {
	MaxPending int64   `json:"max_pending"`
	MaxAgeMs   float64 `json:"max_age_ms"`
}

// outboxLagQuery reads our outbox's backlog: pending rows and the age of the oldest (ms).
const outboxLagQuery = `SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)) * 1000, 0)::float8
	FROM outbox WHERE status = 'pending'`

func startOutboxLag(ctx context.Context, dbURL string) *outboxLag {
	return startLagQuery(ctx, dbURL, outboxLagQuery)
}

// startLagQuery polls query (a count and an age in ms) every 100 ms.
func startLagQuery(ctx context.Context, dbURL, query string) *outboxLag {
	l := &outboxLag{done: make(chan struct{}), last: -1}
	ctx, l.cancel = context.WithCancel(ctx)
	go func() {
		defer close(l.done)
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if conn == nil {
				conn, _ = pgx.Connect(ctx, dbURL)
			}
			if conn != nil {
				var p lagPoint
				err := conn.QueryRow(ctx, query).Scan(&p.pending, &p.ageMs)
				p.at = time.Now()
				l.mu.Lock()
				if err == nil {
					l.points = append(l.points, p)
					l.last = p.pending
				} else {
					l.pollErr = err
				}
				l.mu.Unlock()
				if err != nil {
					conn.Close(context.Background())
					conn = nil
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return l
}

// pending is the latest pending count (-1 before the first poll).
func (l *outboxLag) pending() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

func (l *outboxLag) window(from, to time.Time) lagStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s lagStats
	for _, p := range l.points {
		if !p.at.Before(from) && !p.at.After(to) {
			s.MaxPending = max(s.MaxPending, p.pending)
			s.MaxAgeMs = max(s.MaxAgeMs, p.ageMs)
		}
	}
	return s
}

func (l *outboxLag) stop() {
	l.cancel()
	<-l.done
}
