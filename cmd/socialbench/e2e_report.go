package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/socialnet/social/cmd/socialbench/internal/bench"
)

// e2eReport is everything one run measured; it is printed, and written as JSON and Markdown.
type e2eReport struct {
	Started        time.Time     `json:"started"`
	Machine        bench.Machine `json:"machine"`
	Config         e2eConfigJSON `json:"config"`
	System         e2eSystem     `json:"system"`
	SeedSeconds    float64       `json:"seed_s"`
	Baseline       *sqlBaseline  `json:"postgres_baseline,omitempty"`
	Connections    connMemory    `json:"connections"`
	Phases         []phaseResult `json:"phases"`
	MaxSustainable float64       `json:"max_sustainable_posts_per_s,omitempty"`
	Ratios         []ratio       `json:"ratios,omitempty"`
	Main           *phaseResult  `json:"-"`
}

type e2eSystem struct {
	Mode     string `json:"mode"`
	Realtime int    `json:"realtime_instances"`
}

// e2eConfigJSON is the configuration as reported (no secrets).
type e2eConfigJSON struct {
	Args           string  `json:"args"`
	Users          int     `json:"users"`
	Followers      int     `json:"followers"`
	Celebrity      int     `json:"celebrity_followers"`
	CelebrityEvery int     `json:"celebrity_every"`
	Connected      int     `json:"connected_users"`
	Tabs           int     `json:"tabs"`
	Rate           float64 `json:"rate"`
	DurationS      float64 `json:"duration_s"`
	Concurrency    int     `json:"concurrency"`
}

// ratio is one of our figures against its baseline; Goal is the target, 0 if none.
type ratio struct {
	What     string  `json:"what"`
	Ours     float64 `json:"ours"`
	Baseline float64 `json:"baseline"`
	Ratio    float64 `json:"ratio"`
	Goal     string  `json:"goal,omitempty"`
}

func newE2EReport(cfg e2eConfig) *e2eReport {
	return &e2eReport{
		Started: time.Now().UTC(),
		Machine: bench.ReadMachine(),
		Config: e2eConfigJSON{Args: strings.Join(os.Args[1:], " "), Users: cfg.Users, Followers: cfg.Followers,
			Celebrity: cfg.Celebrity, CelebrityEvery: cfg.CelebrityEvery, Connected: cfg.Connected, Tabs: cfg.Tabs,
			Rate: cfg.Rate, DurationS: cfg.Duration.Seconds(), Concurrency: cfg.Concurrency},
	}
}

func (r *e2eReport) phase(name string) *phaseResult {
	for i := range r.Phases {
		if r.Phases[i].Name == name {
			return &r.Phases[i]
		}
	}
	return nil
}

// computeRatios sets our figures against the baselines.
func (r *e2eReport) computeRatios() {
	b := r.Baseline
	if b == nil {
		return
	}
	add := func(what string, ours, base float64, goal string) {
		if base > 0 {
			r.Ratios = append(r.Ratios, ratio{What: what, Ours: ours, Baseline: base, Ratio: ours / base, Goal: goal})
		}
	}
	if capPh := r.phase("capacity"); capPh != nil {
		add("POST /post/create capacity (closed loop) vs the same SQL through pgx, posts/s", capPh.AcceptedPerSec, b.TxPerSec, "≥ 0.8")
	}
	if r.MaxSustainable > 0 {
		add("max sustainable open-loop rate vs the same SQL through pgx, posts/s", r.MaxSustainable, b.TxPerSec, "")
	}
	if r.Main != nil {
		add("POST /post/create p50 at the load rate vs pgx transaction p50 at capacity, ms", r.Main.HTTP.P50, b.Latency.P50, "")
	}
}

// markdown renders the report as the tables docs/performance.md embeds.
func (r *e2eReport) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("## socialbench e2e — %s\n\n", r.Started.Format(time.RFC3339))
	p("Machine: %d CPUs (%s), %s, %s. System: %s, %d realtime instance(s).\n", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.Memory, r.Machine.Go, r.System.Mode, r.System.Realtime)
	c := r.Config
	p("Graph: %d users, %d followers each, celebrity with %d followers (every %d-th post), %d connected users × %d tabs. Seeded in %.1fs.\n\n",
		c.Users, c.Followers, c.Celebrity, c.CelebrityEvery, c.Connected, c.Tabs, r.SeedSeconds)
	if bl := r.Baseline; bl != nil {
		p("Baseline (same run): the post transaction through pgx, %d workers: %.0f tx/s, p50 %.2f ms, p99 %.2f ms.\n\n",
			bl.Workers, bl.TxPerSec, bl.Latency.P50, bl.Latency.P99)
	}
	p("### Phases\n\n| phase | posts/s accepted | failed | http p50 / p90 / p99 / max ms | e2e p50 / p90 / p99 / max ms | deliveries/s | frames (missing, dup) | outbox max pending / age ms |\n|---|---|---|---|---|---|---|---|\n")
	for _, ph := range r.Phases {
		name := ph.Name
		if ph.TargetRate > 0 {
			name = fmt.Sprintf("%s (target %.0f/s)", ph.Name, ph.TargetRate)
		} else if ph.Workers > 0 {
			name = fmt.Sprintf("%s (%d workers)", ph.Name, ph.Workers)
		}
		if ph.Sustainable != nil && !*ph.Sustainable {
			name += " ✗"
		}
		p("| %s | %.1f | %d | %.1f / %.1f / %.1f / %.1f | %.1f / %.1f / %.1f / %.1f | %.0f | %d (%d, %d) | %d / %.0f |\n",
			name, ph.AcceptedPerSec, ph.Failed, ph.HTTP.P50, ph.HTTP.P90, ph.HTTP.P99, ph.HTTP.Max,
			ph.E2E.P50, ph.E2E.P90, ph.E2E.P99, ph.E2E.Max, ph.DeliveriesPerSec, ph.Frames, ph.Missing, ph.Duplicates,
			ph.Outbox.MaxPending, ph.Outbox.MaxAgeMs)
	}
	if r.MaxSustainable > 0 {
		p("\nMax sustainable rate (e2e p99 within bound, 0 missing, 0 failed): **%.0f posts/s**.\n", r.MaxSustainable)
	}
	if m := r.Main; m != nil && m.E2ECelebrity.N > 0 && m.E2EOthers.N > 0 {
		c, o := m.E2ECelebrity, m.E2EOthers
		p("\nLoad phase end to end, by author: celebrity posts %d frames, p50 / p90 / p99 / max %.1f / %.1f / %.1f / %.1f ms; other posts %d frames, %.1f / %.1f / %.1f / %.1f ms.\n",
			c.N, c.P50, c.P90, c.P99, c.Max, o.N, o.P50, o.P90, o.P99, o.Max)
	}
	if r.Main != nil && len(r.Main.Procs) > 0 {
		p("\n### Processes during the load phase\n\n| process | CPU %% of one core | max RSS MiB |\n|---|---|---|\n")
		for _, ps := range r.Main.Procs {
			p("| %s | %.0f | %.1f |\n", ps.Name, ps.CPUPct, ps.MaxRSSMiB)
		}
		p("\nThe machine was %.0f %% busy (all cores).\n", r.Main.MachineBusyPct)
	}
	cm := r.Connections
	p("\nRealtime memory: %d sockets (opened in %.1fs), RSS %.1f MiB idle → %.1f MiB connected: **%.1f KB per connection**.\n",
		cm.Sockets, cm.ConnectSeconds, cm.IdleRSSMiB, cm.RSSMiB, cm.BytesPerCon/1024)
	if len(r.Ratios) > 0 {
		p("\n### Ours vs baselines\n\n| figure | ours | baseline | ratio | goal |\n|---|---|---|---|---|\n")
		for _, x := range r.Ratios {
			p("| %s | %.1f | %.1f | %.2f | %s |\n", x.What, x.Ours, x.Baseline, x.Ratio, x.Goal)
		}
	}
	return b.String()
}

// write stores report.json and report.md in dir.
func (r *e2eReport) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), j, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.markdown()), 0o644)
}
