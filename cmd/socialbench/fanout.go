package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/socialnet/social/cmd/socialbench/internal/bench"
)

const fanoutUsage = `socialbench fanout — realtime fan-out of one author's posts, ours beside Centrifugo

One author with --subscribers connected followers. Each run starts a fresh system (database,
exchange, processes) and measures:
  1. --rate posts/s (open loop, latency from the scheduled send time) for --rate-for:
     end-to-end p50/p99 (POST /post/create -> every subscriber's socket) and time to the first socket
  2. the highest rate with e2e p99 <= --max-p99 and nothing missing (steps x1.5, one bisection),
     then the same at half of it
Systems: ours (social api + dispatcher + one realtime; its client reads one frame per message,
"social", and/or asks for ?batch=lines, "social-lines": --social-modes) and, with --centrifugo BIN,
Centrifugo fed by the same api's post transaction through its PostgreSQL outbox consumer, one
channel per author (its publish). The same client (coder/websocket) and load generator for all;
runs alternate the systems; the summary gives the median of --runs runs, their range, and ours
÷ Centrifugo paired run by run.

Flags:
`

type fanoutConfig struct {
	Runs        int
	Subscribers int
	Rate        float64
	RateFor     time.Duration
	StepFor     time.Duration
	MaxP99      time.Duration
	FindMax     bool
	SocialModes string
	Centrifugo  string
	System      bench.SystemConfig
	Out         string
	Quiet       bool
}

// The systems a fanout run measures.
const (
	sysSocial      = "social"
	sysSocialLines = "social-lines"
	sysCentrifugo  = "centrifugo"
)

func runFanout(ctx context.Context, args []string) error {
	var c fanoutConfig
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), fanoutUsage); fs.PrintDefaults() }
	fs.IntVar(&c.Runs, "runs", 3, "runs per system (alternating the systems)")
	fs.IntVar(&c.Subscribers, "subscribers", 1000, "connected followers of the one author")
	fs.Float64Var(&c.Rate, "rate", 20, "open-loop rate of the latency phase, posts/s (also find-max's first step)")
	fs.DurationVar(&c.RateFor, "rate-for", 10*time.Second, "length of the latency phase and of the half-max phase")
	fs.DurationVar(&c.StepFor, "step-for", 5*time.Second, "length of each find-max step")
	fs.DurationVar(&c.MaxP99, "max-p99", 250*time.Millisecond, "find-max bound on end-to-end p99")
	fs.BoolVar(&c.FindMax, "find-max", true, "search the highest sustainable rate")
	fs.StringVar(&c.SocialModes, "social-modes", "otus,lines", "comma-separated: otus (one frame per websocket message, the OTUS channel), lines (?batch=lines: a write round's frames in one message, one per line)")
	fs.StringVar(&c.Centrifugo, "centrifugo", "", "path of a Centrifugo binary (built outside this repository) to measure beside ours")
	c.System.Flags(fs)
	fs.StringVar(&c.Out, "out", "", "folder for fanout.json and fanout.md")
	fs.BoolVar(&c.Quiet, "quiet", false, "less progress output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.Runs < 1 || c.Subscribers < 1 || c.Rate <= 0 {
		return errors.New("need --runs, --subscribers and --rate ≥ 1")
	}
	bench.RaiseNoFile()
	var systems []string
	for _, m := range strings.Split(c.SocialModes, ",") {
		switch strings.TrimSpace(m) {
		case "otus":
			systems = append(systems, sysSocial)
		case "lines":
			systems = append(systems, sysSocialLines)
		default:
			return fmt.Errorf("--social-modes: %q is neither otus nor lines", m)
		}
	}
	if c.Centrifugo != "" {
		systems = append(systems, sysCentrifugo)
	}
	if c.System.Bin == "" { // once for every run
		tmp, err := os.MkdirTemp("", "socialbench-fanout-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		c.progress("building ./cmd/social")
		if c.System.Bin, err = bench.Build(ctx, tmp); err != nil {
			return err
		}
	}
	rep := &fanoutReport{Config: c, Machine: bench.ReadMachine(), Started: time.Now().UTC()}
	if c.Centrifugo != "" {
		rep.CentrifugoVersion = centrifugoVersion(c.Centrifugo)
	}
	var errs []error
	for run := range c.Runs {
		order := slices.Clone(systems)
		if run%2 == 1 {
			slices.Reverse(order)
		}
		for _, sysName := range order {
			c.progress("run %d/%d: %s", run+1, c.Runs, sysName)
			t, err := runFanoutTrial(ctx, c, sysName, run+1)
			if t != nil {
				rep.Trials = append(rep.Trials, *t)
				c.progress("%s", t.oneLine())
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("run %d %s: %w", run+1, sysName, err))
				c.progress("run %d %s failed: %v", run+1, sysName, err)
			}
			if ctx.Err() != nil {
				break
			}
		}
	}
	md := rep.markdown(systems)
	fmt.Print(md)
	if c.Out != "" {
		if err := os.MkdirAll(c.Out, 0o755); err != nil {
			return err
		}
		b, _ := json.MarshalIndent(rep, "", "  ")
		errs = append(errs, os.WriteFile(filepath.Join(c.Out, "fanout.json"), b, 0o644),
			os.WriteFile(filepath.Join(c.Out, "fanout.md"), []byte(md), 0o644))
	}
	return errors.Join(errs...)
}

func (c fanoutConfig) progress(format string, args ...any) {
	if !c.Quiet {
		fmt.Fprintf(os.Stderr, "fanout: "+format+"\n", args...)
	}
}

// fanoutTrial is one run of one system.
type fanoutTrial struct {
	System     string        `json:"system"`
	Run        int           `json:"run"`
	AtRate     *phaseResult  `json:"at_rate,omitempty"`
	Steps      []phaseResult `json:"find_max_steps,omitempty"`
	MaxRate    float64       `json:"max_sustainable_posts_per_s"`
	AtHalfMax  *phaseResult  `json:"at_half_max,omitempty"`
	SocketsCut int64         `json:"sockets_cut"` // closed by the server (or broken) during the run
	// RelayPhasesMs is ours only: the relay's mean time per batch in each phase over the AtRate
	// phase (social_outbox_batch_phase_seconds), where a first socket's time after the post goes.
	RelayPhasesMs map[string]float64 `json:"relay_phase_mean_ms_at_rate,omitempty"`
	// MachineBusyPct is the whole machine's busy share during the trial (others' work shows here).
	MachineBusyPct float64 `json:"machine_busy_pct"`
}

func (t *fanoutTrial) oneLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s run %d:", t.System, t.Run)
	if t.AtRate != nil {
		fmt.Fprintf(&b, " at %.0f/s e2e p50/p99 %.1f/%.1f ms, first socket p50 %.1f ms;", t.AtRate.TargetRate,
			t.AtRate.E2E.P50, t.AtRate.E2E.P99, t.AtRate.FirstSocket.P50)
		if t.RelayPhasesMs != nil {
			fmt.Fprintf(&b, " relay means per batch: %s;", phaseLine(t.RelayPhasesMs))
		}
	}
	fmt.Fprintf(&b, " max %.0f posts/s; sockets cut %d; machine busy %.0f%%", t.MaxRate, t.SocketsCut, t.MachineBusyPct)
	return b.String()
}

func runFanoutTrial(ctx context.Context, fc fanoutConfig, sysName string, run int) (*fanoutTrial, error) {
	cfg := loadConfig{
		Users: fc.Subscribers + 1, Celebrity: fc.Subscribers, CelebrityEvery: 1, Connected: fc.Subscribers, Tabs: 1,
		Rate: fc.Rate, Step: fc.StepFor, MaxP99: fc.MaxP99, Straggle: 15 * time.Second, MaxInflight: 1024,
		Quiet: fc.Quiet, log: os.Stderr,
	}
	sc := fc.System
	if sysName == sysCentrifugo {
		sc.NoDispatcher = true // the api's post transaction feeds Centrifugo's outbox
	} else {
		sc.Realtime = 1
	}
	if sysName == sysSocialLines {
		cfg.Proto = "lines"
	}
	t := &fanoutTrial{System: sysName, Run: run}
	sys, err := bench.StartSystem(ctx, sc)
	if err != nil {
		return nil, err
	}
	defer sys.Stop()
	w, err := seed(ctx, sys.DBURL, sys.JWTSecret, cfg)
	if err != nil {
		return nil, err
	}
	lagQuery := outboxLagQuery
	if sysName == sysCentrifugo {
		base, mint, err := startCentrifugo(ctx, sys, fc.Centrifugo, w.ids[0])
		if err != nil {
			return nil, err
		}
		sys.WSURLs = []string{base}
		cfg.Proto, cfg.CentrifugoToken = "centrifugo", mint
		lagQuery = centrifugoLagQuery
	}
	// The rest of the machine split where it can be: RabbitMQ (ours only; Centrifugo's path has no
	// broker) and this process, the load generator with its reading sockets.
	pids := sys.PIDs()
	pids["client"] = os.Getpid()
	if sysName != sysCentrifugo {
		if pid := bench.BrokerPID(fc.System.AMQPURL); pid != 0 {
			pids["broker"] = pid
		}
	}
	sampler := bench.NewSampler(pids)
	cfg.progress("connecting %d sockets", cfg.Connected)
	fleet, err := connectFleet(ctx, cfg, sys.WSURLs, w)
	if err != nil {
		return nil, err
	}
	defer fleet.close()

	lag := startLagQuery(ctx, sys.DBURL, lagQuery)
	defer lag.stop()
	sampler.Start(ctx)
	defer sampler.Stop()
	trialStart := time.Now()
	l := newLoad(cfg, sys.APIURL, w, fleet)

	// Warm-up (connections, plans), not measured.
	l.openLoop(ctx, "warmup", fc.Rate, 2*time.Second)
	l.drain(ctx, lag)
	l.analyzeFrames(&phase{}, &phaseResult{})

	before := scrapeRelayPhases(ctx, sys.DispatcherURL)
	r := l.finish(ctx, l.openLoop(ctx, fmt.Sprintf("%.0f/s", fc.Rate), fc.Rate, fc.RateFor), lag, sampler)
	t.AtRate = &r
	t.RelayPhasesMs = scrapeRelayPhases(ctx, sys.DispatcherURL).meansSince(before)
	if fc.FindMax && ctx.Err() == nil {
		t.MaxRate, t.Steps = l.findMax(ctx, lag, sampler)
		if t.MaxRate > 0 && ctx.Err() == nil {
			ph := l.openLoop(ctx, fmt.Sprintf("half max %.0f/s", t.MaxRate/2), t.MaxRate/2, fc.RateFor)
			r := l.finish(ctx, ph, lag, sampler)
			t.AtHalfMax = &r
		}
	}
	t.SocketsCut = fleet.ended.Load()
	_, t.MachineBusyPct = sampler.Window(trialStart, time.Now())
	return t, ctx.Err()
}

// fanoutReport is every trial and the summary table.
type fanoutReport struct {
	Config            fanoutConfig  `json:"config"`
	Machine           bench.Machine `json:"machine"`
	Started           time.Time     `json:"started"`
	CentrifugoVersion string        `json:"centrifugo_version,omitempty"`
	Trials            []fanoutTrial `json:"trials"`
}

// trialFigure is one figure of a trial; false when the trial did not measure it.
type trialFigure func(t *fanoutTrial) (float64, bool)

func (r *fanoutReport) markdown(systems []string) string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "\n### socialbench fanout, %s\n\n", r.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "%d subscribers of one author; %d runs per system, alternating; median (min–max).", c.Subscribers, c.Runs)
	if r.CentrifugoVersion != "" {
		fmt.Fprintf(&b, " %s.", r.CentrifugoVersion)
	}
	fmt.Fprintf(&b, " Machine: %d CPUs.\n\n", r.Machine.CPUs)
	fmt.Fprintf(&b, "| figure | %s |\n|---|%s\n", strings.Join(systems, " | "), strings.Repeat("---|", len(systems)))
	values := func(s string, get trialFigure) (vals []float64, runs []int) {
		for i := range r.Trials {
			if t := &r.Trials[i]; t.System == s {
				if v, ok := get(t); ok {
					vals, runs = append(vals, v), append(runs, t.Run)
				}
			}
		}
		return vals, runs
	}
	row := func(name, f string, get trialFigure) {
		fmt.Fprintf(&b, "| %s |", name)
		for _, s := range systems {
			vals, _ := values(s, get)
			fmt.Fprintf(&b, " %s |", bench.Spread(vals, f))
		}
		b.WriteString("\n")
	}
	// ratio is ours ÷ Centrifugo's, run by run (the same run's trials alternate on the same machine).
	ratio := func(name string, get trialFigure) {
		if !slices.Contains(systems, sysCentrifugo) {
			return
		}
		cv, cr := values(sysCentrifugo, get)
		fmt.Fprintf(&b, "| %s ÷ Centrifugo's, run by run |", name)
		for _, s := range systems {
			var rs []float64
			if s != sysCentrifugo {
				ov, or := values(s, get)
				for i, run := range or {
					if j := slices.Index(cr, run); j >= 0 && cv[j] > 0 {
						rs = append(rs, ov[i]/cv[j])
					}
				}
			}
			fmt.Fprintf(&b, " %s |", bench.Spread(rs, "%.2f"))
		}
		b.WriteString("\n")
	}
	maxRate := func(t *fanoutTrial) (float64, bool) { return t.MaxRate, c.FindMax }
	halfP99 := func(t *fanoutTrial) (float64, bool) {
		return ifOK(t.AtHalfMax != nil, func() float64 { return t.AtHalfMax.E2E.P99 })
	}
	atRate := func(get func(p *phaseResult) float64) trialFigure {
		return func(t *fanoutTrial) (float64, bool) {
			return ifOK(t.AtRate != nil, func() float64 { return get(t.AtRate) })
		}
	}
	first := atRate(func(p *phaseResult) float64 { return p.FirstSocket.P50 })
	row(fmt.Sprintf("highest rate with e2e p99 ≤ %s, 0 missing, posts/s", c.MaxP99), "%.0f", maxRate)
	ratio("highest rate", maxRate)
	row("e2e p99 at half the highest rate, ms", "%.1f", halfP99)
	ratio("e2e p99 at half the highest rate", halfP99)
	row(fmt.Sprintf("time to the first socket p50 at %.0f posts/s, ms", c.Rate), "%.1f", first)
	ratio("first socket p50", first)
	row(fmt.Sprintf("e2e p50 at %.0f posts/s, ms", c.Rate), "%.1f", atRate(func(p *phaseResult) float64 { return p.E2E.P50 }))
	row(fmt.Sprintf("e2e p99 at %.0f posts/s, ms", c.Rate), "%.1f", atRate(func(p *phaseResult) float64 { return p.E2E.P99 }))
	row(fmt.Sprintf("POST /post/create p50 at %.0f posts/s, ms", c.Rate), "%.1f", atRate(func(p *phaseResult) float64 { return p.HTTP.P50 }))
	for _, name := range phaseOrder {
		row(fmt.Sprintf("relay's %s per batch at %.0f posts/s (mean), ms", name, c.Rate), "%.2f", func(t *fanoutTrial) (float64, bool) {
			v, ok := t.RelayPhasesMs[name]
			return v, ok
		})
	}
	// Where the cores go at that rate: the system's processes by role, RabbitMQ (ours), this
	// client, and the rest of the machine (PostgreSQL and anything else, ours and Centrifugo's alike).
	cores := func(prefixes ...string) trialFigure {
		return func(t *fanoutTrial) (float64, bool) {
			if t.AtRate == nil {
				return 0, false
			}
			var sum float64
			found := false
			for _, ps := range t.AtRate.Procs {
				for _, p := range prefixes {
					if strings.HasPrefix(ps.Name, p) {
						sum, found = sum+ps.CPUPct/100, true
					}
				}
			}
			return sum, found
		}
	}
	named := []string{"realtime", "centrifugo", "dispatcher", "api", "broker", "client"}
	row(fmt.Sprintf("cores at %.0f posts/s: realtime (Centrifugo: its process)", c.Rate), "%.2f", cores("realtime", "centrifugo"))
	row(fmt.Sprintf("cores at %.0f posts/s: dispatcher (ours)", c.Rate), "%.2f", cores("dispatcher"))
	row(fmt.Sprintf("cores at %.0f posts/s: api", c.Rate), "%.2f", cores("api"))
	row(fmt.Sprintf("cores at %.0f posts/s: RabbitMQ (ours)", c.Rate), "%.2f", cores("broker"))
	row(fmt.Sprintf("cores at %.0f posts/s: the load generator (this process, its sockets)", c.Rate), "%.2f", cores("client"))
	row(fmt.Sprintf("cores at %.0f posts/s: the rest of the machine (PostgreSQL, other processes)", c.Rate), "%.2f", func(t *fanoutTrial) (float64, bool) {
		mine, ok := cores(named...)(t)
		return ifOK(ok, func() float64 { return t.AtRate.MachineBusyPct*float64(r.Machine.CPUs)/100 - mine })
	})
	row("sockets cut (whole run)", "%.0f", func(t *fanoutTrial) (float64, bool) { return float64(t.SocketsCut), true })
	row("machine busy during the run, %", "%.0f", func(t *fanoutTrial) (float64, bool) { return t.MachineBusyPct, true })
	b.WriteString("\n")
	return b.String()
}

func ifOK(ok bool, f func() float64) (float64, bool) {
	if !ok {
		return 0, false
	}
	return f(), true
}
