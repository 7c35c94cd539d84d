package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/socialnet/social/cmd/socialbench/internal/bench"
)

const e2eUsage = `socialbench e2e — the whole system under open-loop load

Starts social api, dispatcher and --realtime instances (or one social all) on a fresh database,
seeds users and follows by SQL, measures the baseline (the post transaction's SQL straight through
pgx), connects the followers' sockets, then posts through POST /post/create: a closed-loop capacity
phase, with --find-max the highest open-loop rate with e2e p99 ≤ --max-p99 and nothing missing,
and an open-loop phase (latency from the scheduled send time: no coordinated omission).

Flags:
`

// e2eConfig is every knob of `socialbench e2e`.
type e2eConfig struct {
	loadConfig
	System      bench.SystemConfig
	Mode        string        // "split" or "all"
	Duration    time.Duration // the measured open-loop phase; a third of it per find-max step
	Warmup      time.Duration // unmeasured open-loop lead-in
	Concurrency int           // closed-loop workers of the capacity phase and the SQL baseline
	CapacityFor time.Duration
	BaselineFor time.Duration
	Baseline    bool
	FindMax     bool
	Out         string // report folder ("" = stdout only)
}

func parseE2EFlags(args []string, stderr io.Writer) (e2eConfig, error) {
	var c e2eConfig
	fs := flag.NewFlagSet("e2e", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), e2eUsage); fs.PrintDefaults() }
	fs.IntVar(&c.Users, "users", 2000, "registered users (seeded in bulk by SQL)")
	fs.IntVar(&c.Followers, "followers", 10, "followers of every regular user")
	fs.IntVar(&c.Celebrity, "celebrity", 1000, "followers of the celebrity (user 0); 0 for none")
	fs.IntVar(&c.CelebrityEvery, "celebrity-every", 10, "every Nth post is the celebrity's; 0 for never")
	fs.IntVar(&c.Connected, "connected", 1000, "users with open websockets (the celebrity's followers first)")
	fs.IntVar(&c.Tabs, "tabs", 1, "websockets per connected user")
	fs.Float64Var(&c.Rate, "rate", 100, "open-loop rate of POST /post/create per second (--find-max's first step)")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "measured open-loop phase")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "unmeasured open-loop lead-in at the same rate")
	fs.IntVar(&c.System.Realtime, "realtime", 1, "realtime instances (split mode)")
	fs.StringVar(&c.Mode, "mode", "split", `"split" (api, dispatcher, N realtime processes) or "all" (one process)`)
	c.System.Flags(fs)
	fs.IntVar(&c.Concurrency, "concurrency", 16, "closed-loop workers of the capacity phase and the SQL baseline (the api's DB pool is 16)")
	fs.DurationVar(&c.CapacityFor, "capacity-for", 5*time.Second, "closed-loop /post/create capacity phase (0 to skip)")
	fs.DurationVar(&c.BaselineFor, "baseline-for", 4*time.Second, "length of the SQL baseline")
	fs.BoolVar(&c.Baseline, "baseline", true, "measure the post transaction's SQL through pgx first")
	fs.BoolVar(&c.FindMax, "find-max", false, "raise the rate by half a step (each a third of --duration) until e2e p99 > --max-p99 or frames go missing; then measure at half of the max")
	fs.DurationVar(&c.MaxP99, "max-p99", 250*time.Millisecond, "--find-max bound on end-to-end p99")
	fs.DurationVar(&c.Straggle, "straggle", 15*time.Second, "deadline for late frames after the load stops")
	fs.IntVar(&c.MaxInflight, "max-inflight", 1024, "bound on concurrent open-loop requests (latency still counts from the scheduled time)")
	fs.StringVar(&c.Out, "out", "", "folder for report.json and report.md")
	fs.BoolVar(&c.Quiet, "quiet", false, "less progress output")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.System.All, c.Step = c.Mode == "all", c.Duration/3
	var errs []error
	if c.Users < 2 || c.Followers < 0 || c.Followers >= c.Users || c.Celebrity >= c.Users {
		errs = append(errs, errors.New("need --users ≥ 2, --followers < --users, --celebrity < --users"))
	}
	if c.Connected > c.Users || c.Connected < 0 || c.Tabs < 1 {
		errs = append(errs, errors.New("need 0 ≤ --connected ≤ --users and --tabs ≥ 1"))
	}
	if c.Rate <= 0 || c.Duration <= 0 || c.Concurrency < 1 || c.System.Realtime < 1 {
		errs = append(errs, errors.New("--rate, --duration, --concurrency and --realtime must be positive"))
	}
	if c.Mode != "split" && c.Mode != "all" {
		errs = append(errs, fmt.Errorf("--mode %q: want split or all", c.Mode))
	}
	return c, errors.Join(errs...)
}

func runE2E(ctx context.Context, args []string) error {
	cfg, err := parseE2EFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	cfg.log = os.Stderr
	rep, err := runE2EWith(ctx, cfg)
	if rep != nil {
		fmt.Print(rep.markdown())
		if cfg.Out != "" {
			if werr := rep.write(cfg.Out); werr != nil {
				err = errors.Join(err, werr)
			} else {
				fmt.Fprintf(os.Stderr, "report written to %s\n", cfg.Out)
			}
		}
	}
	return err
}

// runE2EWith runs the whole benchmark: start the system, seed it, measure the baseline, connect
// the sockets, run the phases, collect the report. The report is returned even when a later step
// fails, with what was measured so far.
func runE2EWith(ctx context.Context, cfg e2eConfig) (*e2eReport, error) {
	rep := newE2EReport(cfg)
	cfg.System.Log = cfg.progress
	sys, err := bench.StartSystem(ctx, cfg.System)
	if err != nil {
		return nil, err
	}
	defer sys.Stop()
	rep.System = e2eSystem{Mode: cfg.Mode, Realtime: len(sys.WSURLs)}

	cfg.progress("seeding %d users, %d followers each, celebrity with %d", cfg.Users, cfg.Followers, cfg.Celebrity)
	t0 := time.Now()
	world, err := seed(ctx, sys.DBURL, sys.JWTSecret, cfg.loadConfig)
	if err != nil {
		return rep, err
	}
	rep.SeedSeconds = time.Since(t0).Seconds()

	if cfg.Baseline {
		cfg.progress("baseline: the post transaction through pgx, %d workers", cfg.Concurrency)
		if rep.Baseline, err = sqlPostBaseline(ctx, cfg); err != nil {
			return rep, fmt.Errorf("postgres baseline: %w", err)
		}
	}

	sampler := bench.NewSampler(sys.PIDs())
	idle := sampler.Snapshot()
	cfg.progress("connecting %d websockets to %d realtime instance(s)", cfg.Connected*cfg.Tabs, len(sys.WSURLs))
	t0 = time.Now()
	fleet, err := connectFleet(ctx, cfg.loadConfig, sys.WSURLs, world)
	if err != nil {
		return rep, err
	}
	defer fleet.close()
	rep.Connections = memoryPerConn(sampler, idle, len(fleet.socks))
	rep.Connections.ConnectSeconds = time.Since(t0).Seconds()

	lag := startLagQuery(ctx, sys.DBURL, outboxLagQuery)
	defer lag.stop()
	sampler.Start(ctx)
	defer sampler.Stop()
	load := newLoad(cfg.loadConfig, sys.APIURL, world, fleet)

	if cfg.CapacityFor > 0 {
		cfg.progress("capacity: closed loop, %d workers, %s", cfg.Concurrency, cfg.CapacityFor)
		ph := load.closedLoop(ctx, "capacity", cfg.Concurrency, cfg.CapacityFor)
		rep.Phases = append(rep.Phases, load.finish(ctx, ph, lag, sampler))
	}
	rate := cfg.Rate
	if cfg.FindMax {
		var steps []phaseResult
		rep.MaxSustainable, steps = load.findMax(ctx, lag, sampler)
		rep.Phases = append(rep.Phases, steps...)
		if rep.MaxSustainable > 0 {
			rate = rep.MaxSustainable / 2
		}
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	if cfg.Warmup > 0 {
		load.openLoop(ctx, "warmup", rate, cfg.Warmup)
		load.drain(ctx, lag)
	}
	cfg.progress("open loop: %.0f posts/s for %s", rate, cfg.Duration)
	res := load.finish(ctx, load.openLoop(ctx, "load", rate, cfg.Duration), lag, sampler)
	rep.Phases = append(rep.Phases, res)
	rep.Main = &rep.Phases[len(rep.Phases)-1]
	rep.computeRatios()
	if res.Missing > 0 {
		return rep, fmt.Errorf("%d frames missing after %s", res.Missing, cfg.Straggle)
	}
	return rep, ctx.Err()
}

// connMemory is the realtime processes' memory with the benchmark's sockets open.
type connMemory struct {
	Sockets     int     `json:"sockets"`
	IdleRSSMiB  float64 `json:"idle_rss_mib"`
	RSSMiB      float64 `json:"rss_mib"`
	BytesPerCon float64 `json:"bytes_per_connection"`
	// ConnectSeconds is how long opening them took (each user's first socket waits for its presence write).
	ConnectSeconds float64 `json:"connect_s"`
}

// memoryPerConn compares the realtime processes' RSS before (idle) and after the sockets opened.
func memoryPerConn(s *bench.Sampler, idle bench.Snapshot, sockets int) connMemory {
	time.Sleep(500 * time.Millisecond) // let the last upgrades' buffers settle
	now := s.Snapshot()
	m := connMemory{Sockets: sockets}
	for name, p := range now.Procs {
		if strings.HasPrefix(name, "realtime") || name == "all" {
			m.IdleRSSMiB += float64(idle.Procs[name].RSS) / (1 << 20)
			m.RSSMiB += float64(p.RSS) / (1 << 20)
		}
	}
	if sockets > 0 {
		m.BytesPerCon = (m.RSSMiB - m.IdleRSSMiB) * (1 << 20) / float64(sockets)
	}
	return m
}
