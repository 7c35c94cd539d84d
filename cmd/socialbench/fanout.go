package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const fanoutUsage = `socialbench fanout — realtime fan-out figures of issue #15, optionally beside Centrifugo

One author with --subscribers connected followers. Each run starts a fresh system (database,
exchange, processes) and measures, in order:
  1. idle RSS per authenticated socket: --idle sockets (one user each; the subscribers among them)
     opened on the realtime process, RSS before and after; then only the subscribers stay
  2. --rate posts/s (open loop, latency from the scheduled send time) for --rate-for:
     end-to-end p50/p99 (POST /post/create -> every subscriber's socket) and time to the first socket
  3. the highest rate with e2e p99 <= --max-p99 and nothing missing (steps x1.5, one bisection),
     then the same at half of it
  4. a burst of --burst posts from --publishers closed-loop clients: deliveries/s, realtime CPU-s
     per 1,000 deliveries, sockets cut, frames missing
Systems: ours (social api + dispatcher + one realtime, RabbitMQ --amqp-url; its client reads one
frame per message, "social", and/or asks for ?batch=lines, "social-lines": --social-modes) and, with
--centrifugo BIN, Centrifugo fed by the same api's post transaction through its PostgreSQL outbox
consumer (--centrifugo-modes publish: one channel per author; broadcast: per-recipient personal
channels). The same client (coder/websocket) and load generator for all; runs alternate the
systems; the summary gives the median of --runs runs and their range.

Flags:
`

type fanoutConfig struct {
	Runs            int
	Subscribers     int
	Idle            int
	Rate            float64
	RateFor         time.Duration
	StepFor         time.Duration
	MaxP99          time.Duration
	FindMax         bool
	Burst           int
	Direct          int
	Publishers      int
	SocialModes     string
	Centrifugo      string
	CentrifugoModes string
	AMQPURL         string
	AdminURL        string
	Bin             string
	Out             string
	Quiet           bool
	PGWaits         bool
	Stages          bool
}

func runFanout(ctx context.Context, args []string) error {
	var c fanoutConfig
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), fanoutUsage); fs.PrintDefaults() }
	fs.IntVar(&c.Runs, "runs", 3, "runs per system (alternating the systems)")
	fs.IntVar(&c.Subscribers, "subscribers", 1000, "connected followers of the one author")
	fs.IntVar(&c.Idle, "idle", 10000, "sockets open for the memory reading (0 to skip it)")
	fs.Float64Var(&c.Rate, "rate", 20, "open-loop rate of the latency phase, posts/s (also find-max's first step)")
	fs.DurationVar(&c.RateFor, "rate-for", 10*time.Second, "length of the latency phase and of the half-max phase")
	fs.DurationVar(&c.StepFor, "step-for", 5*time.Second, "length of each find-max step")
	fs.DurationVar(&c.MaxP99, "max-p99", 250*time.Millisecond, "find-max bound on end-to-end p99")
	fs.BoolVar(&c.FindMax, "find-max", true, "search the highest sustainable rate")
	fs.IntVar(&c.Burst, "burst", 1000, "posts in the burst phase (0 to skip it)")
	fs.IntVar(&c.Publishers, "publishers", 16, "closed-loop publishers of the burst")
	fs.IntVar(&c.Direct, "direct", 1000, "frames handed to the realtime side at once, without the api (ours: straight to RabbitMQ; Centrifugo: its outbox in one transaction); 0 to skip")
	fs.StringVar(&c.SocialModes, "social-modes", "otus,lines", "comma-separated: otus (one frame per websocket message, the OTUS channel), lines (?batch=lines: a write round's frames in one message, one per line)")
	fs.StringVar(&c.Centrifugo, "centrifugo", "", "path of a Centrifugo binary (built outside this repository) to measure beside ours")
	fs.StringVar(&c.CentrifugoModes, "centrifugo-modes", "publish", "comma-separated: publish (a channel per author), broadcast (personal channels)")
	fs.StringVar(&c.AMQPURL, "amqp-url", "amqp://guest:guest@127.0.0.1:5673/", "RabbitMQ (4.x: scripts/rabbitmq4)")
	fs.StringVar(&c.AdminURL, "admin-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "maintenance database (create/drop the bench databases)")
	fs.StringVar(&c.Bin, "bin", "", "prebuilt social binary (default: go build ./cmd/social once)")
	fs.StringVar(&c.Out, "out", "", "folder for fanout.json and fanout.md")
	fs.BoolVar(&c.Quiet, "quiet", false, "less progress output")
	fs.BoolVar(&c.Stages, "stages", true, "split the rate phase's posts at the broker (ours: a raw consumer whose queue takes a copy of every message while that phase runs)")
	fs.BoolVar(&c.PGWaits, "pg-waits", false, "sample pg_stat_activity every 5 ms in the rate phase and print what the bench database's backends wait for")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if c.Runs < 1 || c.Subscribers < 1 || c.Rate <= 0 || c.Publishers < 1 {
		return errors.New("need --runs, --subscribers, --rate and --publishers ≥ 1")
	}
	raiseNoFile()
	systems, err := modeSystems("social-modes", c.SocialModes, map[string]string{"otus": "social", "lines": "social-lines"}, "otus nor lines")
	if err != nil {
		return err
	}
	if c.Centrifugo != "" {
		cs, err := modeSystems("centrifugo-modes", c.CentrifugoModes,
			map[string]string{"publish": "centrifugo-publish", "broadcast": "centrifugo-broadcast"}, "publish nor broadcast")
		if err != nil {
			return err
		}
		systems = append(systems, cs...)
	}
	if c.Bin == "" {
		tmp, err := os.MkdirTemp("", "socialbench-fanout-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		c.Bin = filepath.Join(tmp, "social")
		c.progress("building ./cmd/social")
		build := exec.CommandContext(ctx, "go", "build", "-o", c.Bin, "./cmd/social")
		build.Dir = moduleRoot()
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/social: %w\n%s", err, out)
		}
	}
	rep := &fanoutReport{Config: c, Machine: readMachineInfo(), Started: time.Now().UTC()}
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
	System string `json:"system"`
	Run    int    `json:"run"`

	Memory *connMemory `json:"idle_memory,omitempty"`

	AtRate *phaseResult `json:"at_rate,omitempty"`
	// Stages splits the posts of the rate phase at the broker (ours only: a raw consumer bound
	// with the realtime instance's id).
	Stages     *pathStages   `json:"at_rate_stages,omitempty"`
	PGWaits    []pgWait      `json:"at_rate_pg_waits,omitempty"`
	BurstWaits []pgWait      `json:"burst_pg_waits,omitempty"`
	Steps      []phaseResult `json:"find_max_steps,omitempty"`
	MaxRate    float64       `json:"max_sustainable_posts_per_s"`
	AtHalfMax  *phaseResult  `json:"at_half_max,omitempty"`
	Burst      *phaseResult  `json:"burst,omitempty"`
	BurstCPU   float64       `json:"burst_realtime_cpu_s_per_1000"` // the realtime process (Centrifugo's one process)
	BurstDisp  float64       `json:"burst_dispatcher_cpu_s_per_1000,omitempty"`
	BurstAPI   float64       `json:"burst_api_cpu_s_per_1000"`
	Direct     *phaseResult  `json:"direct_burst,omitempty"`
	DirectCPU  float64       `json:"direct_realtime_cpu_s_per_1000"`
	// DirectClientCPU is this process's CPU (the 1,000 reading sockets) per 1,000 deliveries.
	DirectClientCPU float64 `json:"direct_client_cpu_s_per_1000"`
	SocketsCut      int64   `json:"sockets_cut"` // closed by the server (or broken) after the memory reading
	// MachineBusy is the whole machine's busy share during the trial (others' work shows here).
	MachineBusyPct float64 `json:"machine_busy_pct"`
}

func (t *fanoutTrial) oneLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s run %d:", t.System, t.Run)
	if t.Memory != nil {
		fmt.Fprintf(&b, " %.1f KiB/socket at %d;", t.Memory.BytesPerCon/1024, t.Memory.Sockets)
	}
	if t.AtRate != nil {
		fmt.Fprintf(&b, " at %.0f/s e2e p50/p99 %.1f/%.1f ms, first socket p50 %.1f ms;", t.AtRate.TargetRate,
			t.AtRate.E2E.P50, t.AtRate.E2E.P99, t.AtRate.FirstSocket.P50)
	}
	fmt.Fprintf(&b, " max %.0f posts/s;", t.MaxRate)
	if t.Burst != nil {
		fmt.Fprintf(&b, " burst %.0f deliveries/s, realtime %.4f CPU-s/1k, missing %d;", t.Burst.DeliveriesPerSec, t.BurstCPU, t.Burst.Missing)
	}
	fmt.Fprintf(&b, " sockets cut %d; machine busy %.0f%%", t.SocketsCut, t.MachineBusyPct)
	return b.String()
}

// modeSystems maps a comma-separated --flag list of modes to the systems they run, in the order
// given.
func modeSystems(flag, list string, systems map[string]string, choices string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(list, ",") {
		m = strings.TrimSpace(m)
		name, ok := systems[m]
		if !ok {
			return nil, fmt.Errorf("--%s: %q is neither %s", flag, m, choices)
		}
		out = append(out, name)
	}
	return out, nil
}

func runFanoutTrial(ctx context.Context, fc fanoutConfig, sysName string, run int) (*fanoutTrial, error) {
	connected := max(fc.Idle, fc.Subscribers)
	cfg := e2eConfig{
		Users: connected + 1, Followers: 0, Celebrity: fc.Subscribers, CelebrityEvery: 1,
		Connected: connected, Tabs: 1, Rate: fc.Rate, Duration: 3 * fc.StepFor, MaxP99: fc.MaxP99,
		Realtime: 1, Mode: "split", AdminURL: fc.AdminURL, AMQPURL: fc.AMQPURL, Concurrency: fc.Publishers,
		Straggle: 15 * time.Second, MaxInflight: 1024, Bin: fc.Bin, Quiet: fc.Quiet, log: os.Stderr,
	}
	centrifugoMode, isCentrifugo := strings.CutPrefix(sysName, "centrifugo-")
	if !isCentrifugo {
		centrifugoMode = ""
	}
	cfg.APIOnly = isCentrifugo
	if sysName == "social-lines" {
		cfg.Proto = "lines"
	}
	t := &fanoutTrial{System: sysName, Run: run}
	sys, err := startSystem(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer sys.stop()
	w, err := seed(ctx, sys.dbURL, sys.jwtSecret, cfg)
	if err != nil {
		return nil, err
	}
	lagQuery := outboxLagQuery
	if isCentrifugo {
		base, mint, err := startCentrifugo(ctx, sys, fc.Centrifugo, centrifugoMode, w.ids[0])
		if err != nil {
			return nil, err
		}
		sys.wsURLs = []string{base}
		cfg.Proto, cfg.CentrifugoToken = "centrifugo", mint
		lagQuery = centrifugoLagQuery
	}
	// The rest of the machine split where it can be: RabbitMQ (ours only; Centrifugo's path has no
	// broker) and this process, the load generator with its 1,000 reading sockets.
	others := sys.otherPIDs()
	others["client"] = os.Getpid()
	if !isCentrifugo {
		if pid := brokerPID(fc.AMQPURL); pid != 0 { // a scan of /proc: only where it is reported
			others["broker"] = pid
		}
	}
	sampler := newProcSampler(sys.realtimePIDs(), others)
	time.Sleep(time.Second) // let the processes settle after start-up
	idle := sampler.snapshot()
	cfg.progress("connecting %d sockets", connected)
	t0 := time.Now()
	fleet, err := connectFleet(ctx, cfg, sys.wsURLs, w)
	if err != nil {
		return nil, err
	}
	defer fleet.close()
	if fc.Idle > 0 {
		time.Sleep(time.Second)
		m := sampler.memoryPerConn(idle, fleet.perInstance(1))
		m.ConnectSeconds = time.Since(t0).Seconds()
		t.Memory = &m
	}
	followers := map[int32]bool{}
	for _, u := range w.connFollowers[0] {
		followers[u] = true
	}
	fleet.closeSome(func(u int32) bool { return followers[u] })

	lag := startLagQuery(ctx, sys.dbURL, lagQuery)
	defer lag.stop()
	sampler.start(ctx)
	defer sampler.stop()
	trialStart := time.Now()
	l := newLoad(cfg, sys.apiURL, w, fleet)

	// Warm-up (connections, plans), not measured.
	l.openLoop(ctx, "warmup", fc.Rate, 2*time.Second)
	l.drain(ctx, lag)
	l.analyzeFrames(&phase{}, &phaseResult{})

	var probe *brokerProbe
	if !isCentrifugo && fc.Stages {
		if probe, err = startBrokerProbe(fc.AMQPURL, sys.exchange, sys.instances[0]); err != nil {
			return nil, fmt.Errorf("broker probe: %w", err)
		}
		defer func() {
			if probe != nil {
				probe.close()
			}
		}()
	}
	var waits *pgWaits
	if fc.PGWaits {
		if waits, err = startPGWaits(ctx, fc.AdminURL, sys.dbName, 5*time.Millisecond); err != nil {
			return nil, fmt.Errorf("pg waits: %w", err)
		}
	}
	ph := l.openLoop(ctx, fmt.Sprintf("%.0f/s", fc.Rate), fc.Rate, fc.RateFor)
	if waits != nil {
		waits.stop()
		t.PGWaits = waits.top(15)
		cfg.progress("PostgreSQL at %.0f/s, share of 5 ms samples with a backend in (statement · wait):\n%s", fc.Rate, formatWaits(t.PGWaits))
	}
	r := l.finish(ctx, ph, lag, sampler)
	t.AtRate = &r
	if probe != nil {
		st := probe.stages(l, ph)
		t.Stages = &st
		cfg.progress("stages at %.0f/s, p50 / p99 ms: http %.1f / %.1f, then broker +%.1f / +%.1f, first socket +%.1f / +%.1f, last socket +%.1f / +%.1f",
			fc.Rate, st.HTTP.P50, st.HTTP.P99, st.Broker.P50, st.Broker.P99, st.First.P50, st.First.P99, st.Last.P50, st.Last.P99)
		// The probe's queue takes a copy of every message (the recipients' ids, 37 KB per 1,000,
		// routed, stored and decoded again in this process): work Centrifugo's runs do not have.
		// It serves the stages above only, so it goes before the phases that load the machine.
		probe.close()
		probe = nil
	}
	if fc.FindMax && ctx.Err() == nil {
		t.MaxRate, t.Steps = l.findMax(ctx, lag, sampler)
		if t.MaxRate > 0 && ctx.Err() == nil {
			ph := l.openLoop(ctx, fmt.Sprintf("half max %.0f/s", t.MaxRate/2), t.MaxRate/2, fc.RateFor)
			r := l.finish(ctx, ph, lag, sampler)
			t.AtHalfMax = &r
		}
	}
	if fc.Burst > 0 && ctx.Err() == nil {
		cfg.progress("burst: %d posts from %d publishers", fc.Burst, fc.Publishers)
		var waits *pgWaits
		if fc.PGWaits {
			if waits, err = startPGWaits(ctx, fc.AdminURL, sys.dbName, 5*time.Millisecond); err != nil {
				return nil, fmt.Errorf("pg waits: %w", err)
			}
		}
		before := sampler.snapshot()
		ph := l.burst(ctx, "burst", fc.Publishers, fc.Burst)
		l.drain(ctx, lag)
		after := sampler.snapshot()
		if waits != nil {
			waits.stop()
			t.BurstWaits = waits.top(15)
			cfg.progress("PostgreSQL in the burst, share of 5 ms samples with a backend in (statement · wait):\n%s", formatWaits(t.BurstWaits))
		}
		r := l.finish(ctx, ph, lag, sampler)
		t.Burst = &r
		if r.Frames > 0 {
			per := func(names ...string) float64 {
				var cpu float64
				for _, n := range names {
					cpu += after.cpu[n] - before.cpu[n]
				}
				return cpu / float64(r.Frames) * 1000
			}
			for name := range sys.realtimePIDs() {
				t.BurstCPU += per(name)
			}
			t.BurstAPI = per("api")
			if !isCentrifugo {
				t.BurstDisp = per("dispatcher")
			}
		}
	}
	if fc.Direct > 0 && ctx.Err() == nil {
		cfg.progress("direct burst: %d frames for %d subscribers", fc.Direct, fc.Subscribers)
		before := sampler.snapshot()
		_, selfBefore, _ := readProc(os.Getpid())
		ph, err := directBurst(ctx, l, sys, w, fc.Direct, centrifugoMode)
		if err != nil {
			return t, fmt.Errorf("direct burst: %w", err)
		}
		l.drain(ctx, lag)
		after := sampler.snapshot()
		_, selfAfter, _ := readProc(os.Getpid())
		r := l.finish(ctx, ph, lag, sampler)
		t.Direct = &r
		if r.Frames > 0 {
			t.DirectClientCPU = (selfAfter - selfBefore) / float64(r.Frames) * 1000
			for name := range sys.realtimePIDs() {
				t.DirectCPU += (after.cpu[name] - before.cpu[name]) / float64(r.Frames) * 1000
			}
		}
	}
	t.SocketsCut = fleet.ended.Load()
	for _, p := range sampler.window(trialStart, time.Now()) {
		if strings.HasPrefix(p.Name, "machine") {
			t.MachineBusyPct = p.CPUPct / float64(nproc())
		}
	}
	return t, ctx.Err()
}

// fanoutReport is every trial and the summary table.
type fanoutReport struct {
	Config            fanoutConfig  `json:"config"`
	Machine           machine       `json:"machine"`
	Started           time.Time     `json:"started"`
	CentrifugoVersion string        `json:"centrifugo_version,omitempty"`
	Trials            []fanoutTrial `json:"trials"`
}

// spread is "median (min–max, n runs)" of the values, formatted with f.
func spread(vals []float64, f string) string {
	if len(vals) == 0 {
		return "–"
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	if len(s) == 1 {
		return fmt.Sprintf(f, med)
	}
	return fmt.Sprintf(f+" ("+f+"–"+f+")", med, s[0], s[len(s)-1])
}

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
	row := func(name, f string, get func(t *fanoutTrial) (float64, bool)) {
		fmt.Fprintf(&b, "| %s |", name)
		for _, s := range systems {
			var vals []float64
			for i := range r.Trials {
				if t := &r.Trials[i]; t.System == s {
					if v, ok := get(t); ok {
						vals = append(vals, v)
					}
				}
			}
			fmt.Fprintf(&b, " %s |", spread(vals, f))
		}
		b.WriteString("\n")
	}
	row(fmt.Sprintf("idle RSS per authenticated socket at %d, KiB", c.Idle), "%.1f", func(t *fanoutTrial) (float64, bool) {
		return ifOK(t.Memory != nil, func() float64 { return t.Memory.BytesPerCon / 1024 })
	})
	row(fmt.Sprintf("highest rate with e2e p99 ≤ %s, 0 missing, posts/s", c.MaxP99), "%.0f", func(t *fanoutTrial) (float64, bool) {
		return t.MaxRate, c.FindMax
	})
	atRate := func(get func(p *phaseResult) float64) func(t *fanoutTrial) (float64, bool) {
		return func(t *fanoutTrial) (float64, bool) {
			return ifOK(t.AtRate != nil, func() float64 { return get(t.AtRate) })
		}
	}
	row(fmt.Sprintf("e2e p50 at %.0f posts/s, ms", c.Rate), "%.1f", atRate(func(p *phaseResult) float64 { return p.E2E.P50 }))
	row(fmt.Sprintf("e2e p99 at %.0f posts/s, ms", c.Rate), "%.1f", atRate(func(p *phaseResult) float64 { return p.E2E.P99 }))
	row(fmt.Sprintf("time to the first socket p50 at %.0f posts/s, ms", c.Rate), "%.1f", atRate(func(p *phaseResult) float64 { return p.FirstSocket.P50 }))
	row(fmt.Sprintf("POST /post/create p50 at %.0f posts/s, ms", c.Rate), "%.1f", atRate(func(p *phaseResult) float64 { return p.HTTP.P50 }))
	row(fmt.Sprintf("POST /post/create p99 at %.0f posts/s, ms", c.Rate), "%.1f", atRate(func(p *phaseResult) float64 { return p.HTTP.P99 }))
	// Where the cores go at that rate: the system's processes by role, RabbitMQ (ours), this
	// client, and the rest of the machine (PostgreSQL and anything else, ours and Centrifugo's alike).
	cores := func(prefixes ...string) func(t *fanoutTrial) (float64, bool) {
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
	row(fmt.Sprintf("cores at %.0f posts/s: realtime (Centrifugo: its process)", c.Rate), "%.2f", cores("realtime", "centrifugo"))
	row(fmt.Sprintf("cores at %.0f posts/s: dispatcher (ours)", c.Rate), "%.2f", cores("dispatcher"))
	row(fmt.Sprintf("cores at %.0f posts/s: api", c.Rate), "%.2f", cores("api"))
	row(fmt.Sprintf("cores at %.0f posts/s: RabbitMQ (ours)", c.Rate), "%.2f", cores("broker"))
	row(fmt.Sprintf("cores at %.0f posts/s: the load generator (this process, its sockets)", c.Rate), "%.2f", cores("client"))
	row(fmt.Sprintf("cores at %.0f posts/s: the rest of the machine (PostgreSQL, other processes)", c.Rate), "%.2f", func(t *fanoutTrial) (float64, bool) {
		all, ok := cores("machine")(t)
		named, _ := cores("realtime", "centrifugo", "dispatcher", "api", "broker", "client")(t)
		return all - named, ok
	})
	stage := func(get func(s *pathStages) float64) func(t *fanoutTrial) (float64, bool) {
		return func(t *fanoutTrial) (float64, bool) {
			return ifOK(t.Stages != nil, func() float64 { return get(t.Stages) })
		}
	}
	row("ours at that rate, p50: the 200 → the broker's copy, ms", "%.1f", stage(func(s *pathStages) float64 { return s.Broker.P50 }))
	row("ours at that rate, p50: the broker's copy → the first socket, ms", "%.1f", stage(func(s *pathStages) float64 { return s.First.P50 }))
	row("ours at that rate, p50: the first socket → the last, ms", "%.1f", stage(func(s *pathStages) float64 { return s.Last.P50 }))
	row("e2e p99 at half the highest rate, ms", "%.1f", func(t *fanoutTrial) (float64, bool) {
		return ifOK(t.AtHalfMax != nil, func() float64 { return t.AtHalfMax.E2E.P99 })
	})
	burst := func(get func(t *fanoutTrial) float64) func(t *fanoutTrial) (float64, bool) {
		return func(t *fanoutTrial) (float64, bool) { return ifOK(t.Burst != nil, func() float64 { return get(t) }) }
	}
	row(fmt.Sprintf("deliveries/s, %d-post burst from %d publishers", c.Burst, c.Publishers), "%.0f", burst(func(t *fanoutTrial) float64 { return t.Burst.DeliveriesPerSec }))
	row("realtime CPU-s per 1,000 deliveries in the burst (Centrifugo: its process)", "%.4f", burst(func(t *fanoutTrial) float64 { return t.BurstCPU }))
	row("dispatcher CPU-s per 1,000 deliveries in the burst (ours)", "%.4f", func(t *fanoutTrial) (float64, bool) {
		return t.BurstDisp, t.Burst != nil && t.BurstDisp > 0
	})
	row("api CPU-s per 1,000 deliveries in the burst", "%.4f", burst(func(t *fanoutTrial) float64 { return t.BurstAPI }))
	row("posts/s the api accepted in the burst", "%.0f", burst(func(t *fanoutTrial) float64 { return t.Burst.AcceptedPerSec }))
	row("outbox backlog at most in the burst, rows (ours: our outbox; Centrifugo: its)", "%.0f", burst(func(t *fanoutTrial) float64 { return float64(t.Burst.Outbox.MaxPending) }))
	direct := func(get func(t *fanoutTrial) float64) func(t *fanoutTrial) (float64, bool) {
		return func(t *fanoutTrial) (float64, bool) { return ifOK(t.Direct != nil, func() float64 { return get(t) }) }
	}
	row(fmt.Sprintf("deliveries/s, %d frames handed over at once (no api, no database write)", c.Direct), "%.0f", direct(func(t *fanoutTrial) float64 { return t.Direct.DeliveriesPerSec }))
	row("realtime CPU-s per 1,000 deliveries, frames handed over at once", "%.4f", direct(func(t *fanoutTrial) float64 { return t.DirectCPU }))
	row("the client's CPU-s per 1,000 deliveries, frames handed over at once", "%.4f", direct(func(t *fanoutTrial) float64 { return t.DirectClientCPU }))
	row("e2e p99 of the frames handed over at once, ms", "%.0f", direct(func(t *fanoutTrial) float64 { return t.Direct.E2E.P99 }))
	row("frames missing, handed over at once", "%.0f", direct(func(t *fanoutTrial) float64 { return float64(t.Direct.Missing) }))
	row("frames missing in the burst", "%.0f", burst(func(t *fanoutTrial) float64 { return float64(t.Burst.Missing) }))
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
