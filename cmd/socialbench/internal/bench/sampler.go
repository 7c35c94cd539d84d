package bench

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Sampler reads the RSS and CPU time of named processes every 250 ms, with the machine's busy
// share (other work on a shared machine shows there).
type Sampler struct {
	pids    map[string]int
	mu      sync.Mutex
	samples []Snapshot
	cancel  context.CancelFunc
	done    chan struct{}
}

// Snapshot is one reading of every process.
type Snapshot struct {
	At        time.Time
	Procs     map[string]Proc // by name; a process gone is absent
	busy, all float64         // machine jiffies
	cpus      int
}

// ProcStat is one process over a window.
type ProcStat struct {
	Name      string  `json:"name"`
	CPUPct    float64 `json:"cpu_pct"` // of one core
	MaxRSSMiB float64 `json:"max_rss_mib"`
}

// NewSampler samples the processes of pids (name → pid).
func NewSampler(pids map[string]int) *Sampler {
	return &Sampler{pids: pids, done: make(chan struct{})}
}

// Snapshot reads every process now.
func (s *Sampler) Snapshot() Snapshot {
	ps := Snapshot{At: time.Now(), Procs: map[string]Proc{}}
	for name, pid := range s.pids {
		if p, ok := ReadProc(pid); ok {
			ps.Procs[name] = p
		}
	}
	ps.busy, ps.all, ps.cpus = machine()
	return ps
}

// CPU is the CPU seconds the processes whose names pass match spent from s to later.
func (s Snapshot) CPU(later Snapshot, match func(name string) bool) float64 {
	var t float64
	for name, p := range later.Procs {
		if match(name) {
			t += p.CPU - s.Procs[name].CPU
		}
	}
	return t
}

// Start samples in the background until Stop.
func (s *Sampler) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			ps := s.Snapshot()
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

// Stop ends the sampling started by Start.
func (s *Sampler) Stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
}

// Window summarizes the samples between from and to: each process's average CPU and peak RSS, and
// the machine's busy share of all its cores (%).
func (s *Sampler) Window(from, to time.Time) (procs []ProcStat, machineBusyPct float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var in []Snapshot
	for _, ps := range s.samples {
		if !ps.At.Before(from) && !ps.At.After(to) {
			in = append(in, ps)
		}
	}
	if len(in) < 2 {
		return nil, 0
	}
	first, last := in[0], in[len(in)-1]
	secs := last.At.Sub(first.At).Seconds()
	for name, p := range last.Procs {
		st := ProcStat{Name: name, CPUPct: 100 * (p.CPU - first.Procs[name].CPU) / secs}
		for _, ps := range in {
			st.MaxRSSMiB = max(st.MaxRSSMiB, float64(ps.Procs[name].RSS)/(1<<20))
		}
		procs = append(procs, st)
	}
	sort.Slice(procs, func(i, j int) bool { return procs[i].Name < procs[j].Name })
	if all := last.all - first.all; all > 0 {
		machineBusyPct = 100 * (last.busy - first.busy) / all
	}
	return procs, machineBusyPct
}
