package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// e2eConfig is every knob of `socialbench e2e`.
type e2eConfig struct {
	Users          int           // registered users
	Followers      int           // followers of each regular user
	Celebrity      int           // followers of user 0, the celebrity (0: no celebrity)
	CelebrityEvery int           // every Nth post is the celebrity's (0: never)
	Connected      int           // users with open websockets (the first N; the celebrity's followers first)
	Tabs           int           // sockets per connected user
	Rate           float64       // open-loop target posts/s
	Duration       time.Duration // length of the measured open-loop phase
	Warmup         time.Duration // unmeasured open-loop lead-in
	Realtime       int           // realtime instances (split mode; `all` has one)
	Mode           string        // "split" or "all"
	Target         string        // a running api's base URL (skips starting the system)
	WSTargets      string        // comma-separated realtime base URLs in --target mode
	DatabaseURL    string        // the system's database (--target mode: for seeding and outbox lag)
	AdminURL       string        // maintenance database for create/drop
	AMQPURL        string
	JWTSecret      string // --target mode: to mint tokens for seeded users
	Concurrency    int    // closed-loop workers for the capacity phase and the SQL baseline
	CapacityFor    time.Duration
	BaselineFor    time.Duration
	FindMax        bool
	MaxP99         time.Duration // --find-max bound on end-to-end p99
	Straggle       time.Duration // how long to wait for missing frames after the load
	MaxInflight    int
	Out            string // report folder ("" = stdout only)
	Baselines      bool
	Bin            string // a prebuilt social binary (default: go build)
	Quiet          bool
	// APIOnly starts only `social api` (socialbench fanout's Centrifugo runs: the api's post
	// transaction feeds Centrifugo's outbox, no dispatcher or realtime).
	APIOnly bool
	// Proto is the websocket protocol of the fleet: "" (ours, design.md §4: one frame per
	// message), "lines" (ours with ?batch=lines: several frames per message, one per line) or
	// "centrifugo".
	Proto string
	// CentrifugoToken mints a Centrifugo connection token for a user id (Proto "centrifugo").
	CentrifugoToken func(userID string) (string, error)
	log             io.Writer
}

func parseE2EFlags(args []string, stderr io.Writer) (e2eConfig, error) {
	var c e2eConfig
	fs := flag.NewFlagSet("e2e", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.Users, "users", 2000, "registered users (seeded in bulk by SQL)")
	fs.IntVar(&c.Followers, "followers", 10, "followers of every regular user")
	fs.IntVar(&c.Celebrity, "celebrity", 1000, "followers of the celebrity (user 0); 0 for none")
	fs.IntVar(&c.CelebrityEvery, "celebrity-every", 10, "every Nth post is the celebrity's; 0 for never")
	fs.IntVar(&c.Connected, "connected", 1000, "users with open websockets (the celebrity's followers first)")
	fs.IntVar(&c.Tabs, "tabs", 1, "websockets per connected user")
	fs.Float64Var(&c.Rate, "rate", 100, "open-loop target rate of POST /post/create per second")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "measured open-loop phase")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "unmeasured open-loop lead-in at the same rate")
	fs.IntVar(&c.Realtime, "realtime", 1, "realtime instances (split mode)")
	fs.StringVar(&c.Mode, "mode", "split", `"split" (api, dispatcher, N realtime processes) or "all" (one process)`)
	fs.StringVar(&c.Target, "target", "", "base URL of a running api (then --ws, --database-url and --jwt-secret are needed)")
	fs.StringVar(&c.WSTargets, "ws", "", "--target mode: comma-separated realtime base URLs (default: the api's)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "--target mode: the system's database (seeding, outbox lag)")
	fs.StringVar(&c.AdminURL, "admin-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "maintenance database (create/drop the bench database, baselines)")
	fs.StringVar(&c.AMQPURL, "amqp-url", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "--target mode: the system's JWT_SECRET, to mint tokens for the seeded users")
	fs.IntVar(&c.Concurrency, "concurrency", 16, "closed-loop workers of the capacity phase and the SQL baseline (the api's DB pool is 16)")
	fs.DurationVar(&c.CapacityFor, "capacity-for", 5*time.Second, "closed-loop /post/create capacity phase (0 to skip)")
	fs.DurationVar(&c.BaselineFor, "baseline-for", 4*time.Second, "length of each baseline")
	fs.BoolVar(&c.FindMax, "find-max", false, "raise the rate until e2e p99 > --max-p99 or frames go missing; then measure at half of the max")
	fs.DurationVar(&c.MaxP99, "max-p99", 250*time.Millisecond, "--find-max bound on end-to-end p99")
	fs.DurationVar(&c.Straggle, "straggle", 15*time.Second, "deadline for late frames after the load stops")
	fs.IntVar(&c.MaxInflight, "max-inflight", 1024, "bound on concurrent open-loop requests (latency still counts from the scheduled time)")
	fs.StringVar(&c.Out, "out", "", "folder for report.json, report.md and latency.svg")
	fs.BoolVar(&c.Baselines, "baselines", true, "measure the PostgreSQL, RabbitMQ and websocket baselines first")
	fs.StringVar(&c.Bin, "bin", "", "prebuilt social binary (default: go build ./cmd/social)")
	fs.BoolVar(&c.Quiet, "quiet", false, "less progress output")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	if c.Users < 2 || c.Followers < 0 || c.Followers >= c.Users || c.Celebrity >= c.Users {
		errs = append(errs, errors.New("need --users ≥ 2, --followers < --users, --celebrity < --users"))
	}
	if c.Connected > c.Users || c.Connected < 0 || c.Tabs < 1 {
		errs = append(errs, errors.New("need 0 ≤ --connected ≤ --users and --tabs ≥ 1"))
	}
	if c.Rate <= 0 || c.Duration <= 0 || c.Concurrency < 1 || c.Realtime < 1 {
		errs = append(errs, errors.New("--rate, --duration, --concurrency and --realtime must be positive"))
	}
	if c.Mode != "split" && c.Mode != "all" {
		errs = append(errs, fmt.Errorf("--mode %q: want split or all", c.Mode))
	}
	if c.Target != "" && (c.DatabaseURL == "" || c.JWTSecret == "") {
		errs = append(errs, errors.New("--target needs --database-url and --jwt-secret"))
	}
	return c, errors.Join(errs...)
}

func runE2E(ctx context.Context, args []string) error {
	cfg, err := parseE2EFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg.log = os.Stderr
	rep, err := runE2EWith(ctx, cfg)
	if rep != nil {
		rep.print(os.Stdout)
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

// runE2EWith runs the whole benchmark: start (or reach) the system, seed it, measure the
// baselines, connect the sockets, run the phases, collect the report. The report is returned
// even when a later step fails, with what was measured so far.
func runE2EWith(ctx context.Context, cfg e2eConfig) (*e2eReport, error) {
	rep := newE2EReport(cfg)
	sys, err := startSystem(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer sys.stop()
	rep.System = sys.describe()

	cfg.progress("seeding %d users, %d followers each, celebrity with %d", cfg.Users, cfg.Followers, cfg.Celebrity)
	t0 := time.Now()
	world, err := seed(ctx, sys.dbURL, sys.jwtSecret, cfg)
	if err != nil {
		return rep, err
	}
	rep.SeedSeconds = time.Since(t0).Seconds()
	cfg.progress("seeded in %.1fs", rep.SeedSeconds)

	if cfg.Baselines {
		if err := runBaselines(ctx, cfg, sys, world, rep); err != nil {
			return rep, err
		}
	}

	sampler := newProcSampler(sys.realtimePIDs(), sys.otherPIDs())
	idle := sampler.snapshot()
	cfg.progress("connecting %d websockets to %d realtime instance(s)", cfg.Connected*cfg.Tabs, len(sys.wsURLs))
	t0 = time.Now()
	fleet, err := connectFleet(ctx, cfg, sys.wsURLs, world)
	if err != nil {
		return rep, err
	}
	defer fleet.close()
	rep.Connections = sampler.memoryPerConn(idle, fleet.perInstance(len(sys.wsURLs)))
	rep.Connections.ConnectSeconds = time.Since(t0).Seconds()
	cfg.progress("connected in %.1fs", rep.Connections.ConnectSeconds)

	lag := startOutboxLag(ctx, sys.dbURL)
	defer lag.stop()
	sampler.start(ctx)
	defer sampler.stop()
	load := newLoad(cfg, sys.apiURL, world, fleet)

	if cfg.CapacityFor > 0 {
		cfg.progress("capacity: closed loop, %d workers, %s", cfg.Concurrency, cfg.CapacityFor)
		ph := load.closedLoop(ctx, "capacity", cfg.Concurrency, cfg.CapacityFor)
		rep.Phases = append(rep.Phases, load.finish(ctx, ph, lag, sampler))
	}
	rate := cfg.Rate
	if cfg.FindMax {
		max, steps := load.findMax(ctx, lag, sampler)
		rep.Phases = append(rep.Phases, steps...)
		rep.MaxSustainable = max
		rate = max / 2
		if rate <= 0 {
			rate = cfg.Rate
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
	ph := load.openLoop(ctx, "load", rate, cfg.Duration)
	res := load.finish(ctx, ph, lag, sampler)
	rep.Phases = append(rep.Phases, res)
	rep.Main = &rep.Phases[len(rep.Phases)-1]
	rep.Series = res.series()
	rep.computeRatios()
	if res.Missing > 0 {
		return rep, fmt.Errorf("%d frames missing after %s", res.Missing, cfg.Straggle)
	}
	return rep, ctx.Err()
}

func (c e2eConfig) progress(format string, args ...any) {
	if c.Quiet || c.log == nil {
		return
	}
	fmt.Fprintf(c.log, "e2e: "+format+"\n", args...)
}
