package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

const outboxUsage = `Usage: social outbox <command> [flags]

Commands:
  status       show the outbox backlog: pending rows, oldest pending age, dead rows, last relayed
               position, relay rate (--json for machines)
  replay       re-enqueue relayed post events so the dispatcher relays them again
  retry-dead   move dead rows back to pending

Run 'social outbox <command> -h' for the flags. docs/operations.md explains the output.
`

// opTimeout bounds the single queries of status and retry-dead: an operator waiting on a stuck
// database should get an error, not a hung terminal.
const opTimeout = 30 * time.Second

// runOutbox runs the operator subcommands: status, replay, retry-dead.
func (a *app) runOutbox(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(a.stderr, outboxUsage)
		return errUsage
	}
	switch args[0] {
	case "status":
		return a.runOutboxStatus(ctx, args[1:])
	case "replay":
		return a.runOutboxReplay(ctx, args[1:])
	case "retry-dead":
		return a.runOutboxRetryDead(ctx, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(a.stdout, outboxUsage)
		return nil
	}
	fmt.Fprintf(a.stderr, "social outbox: unknown command %q\n\n%s", args[0], outboxUsage)
	return errUsage
}

// parseFlags parses args into fs, writing errors and -h to stderr. It returns errUsage (exit 1,
// already explained) for bad flags and errHelp for -h.
func (a *app) parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(a.stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(a.stderr, "social %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

func (a *app) runOutboxStatus(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("outbox status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object (field names: docs/operations.md)")
	if err := a.parseFlags(fs, args); err != nil {
		return helpIsSuccess(err)
	}
	pool, err := a.openPool(ctx, true)
	if err != nil {
		return fmt.Errorf("outbox status: %w", err)
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	s, err := outbox.ReadStatus(ctx, pool)
	if err != nil {
		return fmt.Errorf("outbox status: %w", err)
	}
	b := a.brokerStatus(ctx)
	s.Broker = &b
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		return enc.Encode(s)
	}
	printStatus(a.stdout, s)
	return nil
}

func printStatus(w io.Writer, s outbox.Status) {
	fmt.Fprintf(w, "pending rows:           %d", s.Pending)
	if s.PendingReplays > 0 {
		fmt.Fprintf(w, " (%d of them replays)", s.PendingReplays)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "oldest pending age:     %s\n", humanSeconds(s.OldestPendingAgeSeconds))
	fmt.Fprintf(w, "dead rows:              %d\n", s.Dead)
	fmt.Fprintf(w, "last relayed position:  %d\n", s.LastRelayedPosition)
	fmt.Fprintf(w, "relay rate:             %.1f rows/s (%d in the last minute)\n", s.RelayRatePerSecond, s.RelayedLastMinute)
	if b := s.Broker; b != nil {
		printBroker(w, *b)
	}
	if len(s.DeadRows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nnewest dead rows (retry with `social outbox retry-dead --id ID`):\n")
	for _, d := range s.DeadRows {
		fmt.Fprintf(w, "  id %d  %s %s  author %s  %d attempts  created %s\n    last error: %s\n",
			d.ID, d.EventType, d.EventID, d.Author, d.Attempts, d.CreatedAt.UTC().Format(time.RFC3339), oneLine(d.LastError))
	}
	if int64(len(s.DeadRows)) < s.Dead {
		fmt.Fprintf(w, "  … and %d older\n", s.Dead-int64(len(s.DeadRows)))
	}
}

func humanSeconds(s float64) string {
	if s == 0 {
		return "0s (nothing waits)"
	}
	return (time.Duration(s * float64(time.Second))).Round(100 * time.Millisecond).String()
}

func oneLine(s string) string {
	if s == "" {
		return "(none)"
	}
	return strings.Join(strings.Fields(s), " ")
}

func (a *app) runOutboxReplay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("outbox replay", flag.ContinueOnError)
	from := fs.Int64("from-position", 0, "first position to replay (required, inclusive)")
	to := fs.Int64("to-position", 0, "last position to replay, inclusive (default: the last relayed when the replay starts)")
	since := fs.String("since", "", "only events created at or after this time (RFC3339)")
	until := fs.String("until", "", "only events created before this time (RFC3339)")
	author := fs.String("author", "", "only events of this author (user id)")
	types := fs.String("type", "", "only these event types, comma-separated: "+strings.Join(domain.RelayedEventTypes(), ","))
	dryRun := fs.Bool("dry-run", false, "only count the matching events; write nothing")
	batch := fs.Int("batch-size", outbox.DefaultReplayBatch, "events enqueued per transaction, 1..10000")
	wait := fs.Bool("wait", true, "enqueue the next batch only after the dispatcher relayed the previous one, so live\n"+
		"posts fall at most one batch behind; -wait=false when no dispatcher runs")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: social outbox replay --from-position N [flags]\n\n"+
			"Re-enqueues relayed post events so the dispatcher publishes them again with their original\n"+
			"position and event id (clients dedupe them). Safe to interrupt with Ctrl-C and to run again.\n\n")
		fs.PrintDefaults()
	}
	if err := a.parseFlags(fs, args); err != nil {
		return helpIsSuccess(err)
	}
	// Every check happens before the database is touched: a bad flag writes nothing.
	var errs []error
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if !explicit["from-position"] {
		errs = append(errs, errors.New("--from-position is required (e.g. --from-position 1 for everything)"))
	}
	if explicit["to-position"] && *to == 0 {
		errs = append(errs, errors.New("--to-position 0: positions start at 1"))
	}
	f := outbox.ReplayFilter{FromPosition: *from, ToPosition: *to, Author: *author}
	if !explicit["from-position"] {
		f.FromPosition = 0 // reported above; validate the rest
	}
	var err error
	if f.Since, err = parseTimeFlag("since", *since); err != nil {
		errs = append(errs, err)
	}
	if f.Until, err = parseTimeFlag("until", *until); err != nil {
		errs = append(errs, err)
	}
	if *types != "" {
		for _, t := range strings.Split(*types, ",") {
			f.Types = append(f.Types, strings.TrimSpace(t))
		}
	}
	if *batch < 1 || *batch > 10_000 {
		errs = append(errs, fmt.Errorf("--batch-size %d: want 1..10000", *batch))
	}
	if err := f.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("outbox replay: %w", err)
	}

	pool, err := a.openPool(ctx, true)
	if err != nil {
		return fmt.Errorf("outbox replay: %w", err)
	}
	defer pool.Close()

	rep := a.newReplayReporter(*dryRun)
	res, err := outbox.Replay(ctx, pool, outbox.ReplayOptions{ReplayFilter: f, DryRun: *dryRun, BatchSize: *batch,
		WaitRelayed: *wait, Progress: rep.progress})
	rep.finish()
	rangeText := fmt.Sprintf("positions %d..%d", f.FromPosition, res.ToPosition)
	switch {
	case err == nil && *dryRun:
		fmt.Fprintf(a.stdout, "dry run: %d events would be enqueued (%s); nothing written\n", res.Matched, rangeText)
		return nil
	case err == nil:
		fmt.Fprintf(a.stdout, "enqueued %d events for relay (%s)\n", res.Enqueued, rangeText)
		return nil
	}
	fmt.Fprintf(a.stdout, "enqueued %d events for relay before stopping\n", res.Enqueued)
	if res.Enqueued == 0 {
		return fmt.Errorf("outbox replay: %w", err) // running the same command again is the resume
	}
	// Resuming from the next position, with the same (now fixed) upper bound, enqueues no event of
	// this run again even if the dispatcher already re-relayed them.
	f.FromPosition = res.ResumeFrom(f)
	f.ToPosition = res.ToPosition
	how := "stopped"
	if errors.Is(err, context.Canceled) {
		how = "interrupted"
	}
	return fmt.Errorf("outbox replay %s: %w\nto continue, run: %s", how, err, resumeCommand(f, *batch, *wait))
}

func helpIsSuccess(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: want an RFC3339 time such as 2025-01-31T18:00:00Z", name, v)
	}
	return t, nil
}

// resumeCommand spells the replay that continues where an interrupted one stopped.
func resumeCommand(f outbox.ReplayFilter, batch int, wait bool) string {
	parts := []string{"social outbox replay",
		"--from-position " + strconv.FormatInt(f.FromPosition, 10),
		"--to-position " + strconv.FormatInt(f.ToPosition, 10)}
	if !f.Since.IsZero() {
		parts = append(parts, "--since "+f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "--until "+f.Until.Format(time.RFC3339Nano))
	}
	if f.Author != "" {
		parts = append(parts, "--author "+f.Author)
	}
	if len(f.Types) > 0 {
		parts = append(parts, "--type "+strings.Join(f.Types, ","))
	}
	if batch != outbox.DefaultReplayBatch {
		parts = append(parts, "--batch-size "+strconv.Itoa(batch))
	}
	if !wait {
		parts = append(parts, "--wait=false")
	}
	return strings.Join(parts, " ")
}

// replayReporter shows replay progress: a bar with rate and ETA on a terminal, a log line every
// few seconds otherwise (a bar's carriage returns make a mess of log files).
type replayReporter struct {
	a       *app
	dryRun  bool
	bar     *progressbar.ProgressBar
	start   time.Time
	lastLog time.Time
	last    outbox.ReplayProgress
}

func (a *app) newReplayReporter(dryRun bool) *replayReporter {
	return &replayReporter{a: a, dryRun: dryRun, start: time.Now()}
}

func (r *replayReporter) progress(p outbox.ReplayProgress) {
	r.last = p
	if r.dryRun {
		return
	}
	if r.a.stderrTTY {
		if r.bar == nil {
			r.bar = progressbar.NewOptions64(p.Matched,
				progressbar.OptionSetWriter(r.a.stderr),
				progressbar.OptionSetDescription("replaying"),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("events"),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetWidth(30),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(r.a.stderr) }),
			)
		}
		_ = r.bar.Set64(p.Enqueued)
		return
	}
	now := time.Now()
	if p.Enqueued == 0 || now.Sub(r.lastLog) < 2*time.Second {
		return
	}
	r.lastLog = now
	r.log(p, now)
}

func (r *replayReporter) log(p outbox.ReplayProgress, now time.Time) {
	elapsed := now.Sub(r.start)
	rate := float64(p.Enqueued) / max(elapsed.Seconds(), 1e-3)
	attrs := []any{slog.Int64("enqueued", p.Enqueued), slog.Int64("matched", p.Matched),
		slog.Int64("position", p.Position), slog.String("rate", fmt.Sprintf("%.0f/s", rate))}
	if left := p.Matched - p.Enqueued; left > 0 && rate > 0 {
		eta := time.Duration(float64(left) / rate * float64(time.Second)).Round(time.Second)
		attrs = append(attrs, slog.String("eta", eta.String()))
	}
	if p.Waiting > 0 {
		attrs = append(attrs, slog.Int64("waiting_for_dispatcher", p.Waiting))
	}
	r.a.log.Info("replay progress", attrs...)
}

func (r *replayReporter) finish() {
	if r.bar != nil {
		if r.last.Enqueued < r.last.Matched {
			// Interrupted, or rows taken meanwhile by another replay: leave the bar where it is.
			fmt.Fprintln(r.a.stderr)
			return
		}
		_ = r.bar.Finish()
		return
	}
	if !r.dryRun && r.last.Enqueued > 0 && !r.a.stderrTTY {
		r.log(r.last, time.Now())
	}
}

// idList is a repeatable --id flag that also takes comma-separated values.
type idList []int64

func (l *idList) String() string { return fmt.Sprint([]int64(*l)) }

func (l *idList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || id < 1 {
			return fmt.Errorf("%q is not an outbox row id", s)
		}
		*l = append(*l, id)
	}
	return nil
}

func (a *app) runOutboxRetryDead(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("outbox retry-dead", flag.ContinueOnError)
	var ids idList
	fs.Var(&ids, "id", "outbox row id to retry (repeat or comma-separate; default: every dead row)")
	if err := a.parseFlags(fs, args); err != nil {
		return helpIsSuccess(err)
	}
	pool, err := a.openPool(ctx, true)
	if err != nil {
		return fmt.Errorf("outbox retry-dead: %w", err)
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	n, err := outbox.RetryDead(ctx, pool, ids...)
	fmt.Fprintf(a.stdout, "moved %d dead rows back to pending\n", n)
	if err != nil {
		return fmt.Errorf("outbox retry-dead: %w", err)
	}
	if len(ids) > 0 && n < int64(len(ids)) {
		fmt.Fprintf(a.stdout, "(%d of the given ids were not dead)\n", int64(len(ids))-n)
	}
	return nil
}
