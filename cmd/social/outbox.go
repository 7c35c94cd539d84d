package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

// opTimeout bounds the single queries of status and retry-dead: an operator waiting on a stuck
// database should get an error, not a hung terminal.
const opTimeout = 30 * time.Second

// outboxCommand is `social outbox` and its operator subcommands: status, replay, retry-dead.
// They log their configuration at level (debug: an operator's terminal shows only the answer).
func (a *app) outboxCommand(environ map[string]string, level slog.Level) *cobra.Command {
	parent := &cobra.Command{
		Use:   "outbox",
		Short: "operate the outbox: status, replay, retry-dead",
		Long: `Operator commands for the outbox, the table the dispatcher relays to RabbitMQ.
docs/operations.md explains their output and when to use them.`,
		Args:        cobra.ArbitraryArgs,
		RunE:        group,
		Annotations: map[string]string{envAnnotation: envList(envOperator)},
	}

	var asJSON bool
	status := &cobra.Command{
		Use:   "status [--json]",
		Short: "show the backlog: pending and dead rows, last relayed position, relay rate, broker",
		Long: `Shows pending rows (and how many of them are replays), the oldest pending age, dead rows (the
20 newest, with their last error), the last relayed position, the relay rate, and the broker's
version with the message shape a dispatcher chooses for it. Read-only.`,
		Args:        noArgs,
		Annotations: map[string]string{envAnnotation: envList(envOperator, []string{"AMQP_URL"})},
		RunE: a.configured(environ, level, func(cmd *cobra.Command, _ []string) error {
			return a.runOutboxStatus(cmd.Context(), asJSON)
		}),
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print one JSON object (field names: docs/operations.md)")

	var ro replayFlags
	replay := &cobra.Command{
		Use:   "replay --from-position N [flags]",
		Short: "re-enqueue relayed events so the dispatcher relays them again",
		Long: `Re-enqueues relayed events so the dispatcher publishes them again with their original
position and event id (clients dedupe them). Safe to run while the system serves traffic, safe
to interrupt with Ctrl-C (it prints the command that continues) and to run again.

With --wait (the default) each batch waits until a running dispatcher relayed the previous one,
so live posts fall at most one batch behind. Without a dispatcher on this database nothing moves:
use --wait=false then (or start 'social dispatcher').`,
		Example: `  social outbox replay --from-position 1 --dry-run
  social outbox replay --from-position 1200 --to-position 1500 --author 0193a5b0-7c1e-7d2a-9a5e-3f1c2b4d5e6f
  social outbox replay --from-position 1 --since 2025-01-31T18:00:00Z --wait=false`,
		Args:        noArgs,
		Annotations: map[string]string{envAnnotation: envList(envOperator)},
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := ro.filter(cmd) // flags first: a bad one is a usage error, before anything starts
			if err != nil {
				return err
			}
			return a.configured(environ, level, func(cmd *cobra.Command, _ []string) error {
				return a.runOutboxReplay(cmd.Context(), f, ro)
			})(cmd, args)
		},
	}
	f := replay.Flags()
	f.Int64Var(&ro.from, "from-position", 0, "first position to replay, inclusive (required; 1 for everything)")
	f.Int64Var(&ro.to, "to-position", 0, "last position to replay, inclusive (default: the last relayed when the replay starts)")
	f.StringVar(&ro.since, "since", "", "only events created at or after this time (RFC3339)")
	f.StringVar(&ro.until, "until", "", "only events created before this time (RFC3339)")
	f.StringVar(&ro.author, "author", "", "only events of this author (user id)")
	f.StringVar(&ro.types, "type", "", "only these event types, comma-separated: "+strings.Join(domain.RelayedEventTypes(), ","))
	f.BoolVar(&ro.dryRun, "dry-run", false, "only count the matching events; write nothing")
	f.IntVar(&ro.batch, "batch-size", outbox.DefaultReplayBatch, "events enqueued per transaction, 1..10000")
	f.BoolVar(&ro.wait, "wait", true, "enqueue the next batch only after a dispatcher relayed the previous one;\n"+
		"--wait=false when no dispatcher runs")

	var ids idList
	retry := &cobra.Command{
		Use:   "retry-dead [--id N]...",
		Short: "move dead rows back to pending",
		Long: `Moves dead outbox rows (parked after too many failed publishes; see 'social outbox status')
back to pending, so the dispatcher tries them again. Without --id, every dead row.`,
		Example:     "  social outbox retry-dead --id 17 --id 18,19",
		Args:        noArgs,
		Annotations: map[string]string{envAnnotation: envList(envOperator)},
		RunE: a.configured(environ, level, func(cmd *cobra.Command, _ []string) error {
			return a.runOutboxRetryDead(cmd.Context(), ids)
		}),
	}
	retry.Flags().Var(&ids, "id", "outbox row id to retry (repeat or comma-separate; default: every dead row)")

	parent.AddCommand(status, replay, retry)
	return parent
}

func (a *app) runOutboxStatus(ctx context.Context, asJSON bool) error {
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
	if asJSON {
		enc := json.NewEncoder(a.stdout)
		return enc.Encode(s)
	}
	printStatus(a.stdout, s)
	return nil
}

func printStatus(w io.Writer, s outbox.Status) {
	fmt.Fprintf(w, "pending rows:           %d (%d of them replays)\n", s.Pending, s.PendingReplays)
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

// replayFlags are the flags of `social outbox replay`.
type replayFlags struct {
	from, to                    int64
	since, until, author, types string
	dryRun, wait                bool
	batch                       int
}

// filter checks the flags and builds the replay's filter; every mistake is reported at once.
func (o replayFlags) filter(cmd *cobra.Command) (outbox.ReplayFilter, error) {
	var errs []error
	changed := cmd.Flags().Changed
	if !changed("from-position") {
		errs = append(errs, errors.New("--from-position is required (e.g. --from-position 1 for everything)"))
	}
	if changed("to-position") && o.to == 0 {
		errs = append(errs, errors.New("--to-position 0: positions start at 1"))
	}
	f := outbox.ReplayFilter{FromPosition: o.from, ToPosition: o.to, Author: o.author}
	var err error
	if f.Since, err = parseTimeFlag("since", o.since); err != nil {
		errs = append(errs, err)
	}
	if f.Until, err = parseTimeFlag("until", o.until); err != nil {
		errs = append(errs, err)
	}
	if o.types != "" {
		for _, t := range strings.Split(o.types, ",") {
			f.Types = append(f.Types, strings.TrimSpace(t))
		}
	}
	if o.batch < 1 || o.batch > 10_000 {
		errs = append(errs, fmt.Errorf("--batch-size %d: want 1..10000", o.batch))
	}
	if err := f.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return f, &usageError{cmd: cmd.CommandPath(), err: err}
	}
	return f, nil
}

func (a *app) runOutboxReplay(ctx context.Context, f outbox.ReplayFilter, o replayFlags) error {
	pool, err := a.openPool(ctx, true)
	if err != nil {
		return fmt.Errorf("outbox replay: %w", err)
	}
	defer pool.Close()

	rep := a.newReplayReporter(o.dryRun)
	res, err := outbox.Replay(ctx, pool, outbox.ReplayOptions{ReplayFilter: f, DryRun: o.dryRun, BatchSize: o.batch,
		WaitRelayed: o.wait, Progress: rep.progress})
	rep.finish()
	if err == nil && f.ToPosition == 0 && f.FromPosition > res.ToPosition {
		// The open end is the last relayed position: a start beyond it is a mistake, not an empty range.
		if res.ToPosition == 0 {
			return fmt.Errorf("outbox replay: nothing to replay: no event has been relayed yet")
		}
		return fmt.Errorf("outbox replay: nothing to replay: --from-position %d is beyond the last relayed position, %d",
			f.FromPosition, res.ToPosition)
	}
	rangeText := fmt.Sprintf("positions %d..%d", f.FromPosition, res.ToPosition)
	switch {
	case err == nil && o.dryRun:
		fmt.Fprintf(a.stdout, "dry run: %s would be enqueued (%s); nothing written\n", plural(res.Matched, "event"), rangeText)
		return nil
	case err == nil:
		fmt.Fprintf(a.stdout, "enqueued %s for relay (%s)\n", plural(res.Enqueued, "event"), rangeText)
		return nil
	}
	fmt.Fprintf(a.stdout, "enqueued %s for relay before stopping\n", plural(res.Enqueued, "event"))
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
	return fmt.Errorf("outbox replay %s: %w\nto continue, run: %s", how, err, resumeCommand(f, o.batch, o.wait))
}

// plural is "1 event", "2 events".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
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
// few seconds otherwise (a bar's carriage returns make a mess of log files). A replay that waits
// for a dispatcher longer than waitNotice says so, and how not to wait, on either.
type replayReporter struct {
	a            *app
	dryRun       bool
	bar          *progressbar.ProgressBar
	start        time.Time
	lastLog      time.Time
	last         outbox.ReplayProgress
	now          func() time.Time
	waitingSince time.Time // zero while not waiting
	told         bool      // the waiting notice was given
}

// waitNotice is how long a replay waits for the dispatcher before it says so.
const waitNotice = 3 * time.Second

func (a *app) newReplayReporter(dryRun bool) *replayReporter {
	return &replayReporter{a: a, dryRun: dryRun, start: time.Now(), now: time.Now}
}

func (r *replayReporter) progress(p outbox.ReplayProgress) {
	r.last = p
	if r.dryRun {
		return
	}
	now := r.now()
	r.noticeWaiting(p, now)
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
	if p.Enqueued == 0 || now.Sub(r.lastLog) < 2*time.Second {
		return
	}
	r.lastLog = now
	r.log(p, now)
}

// noticeWaiting tells the operator, once, that the replay is held by the dispatcher: with none
// running on this database it would wait for ever, its bar frozen.
func (r *replayReporter) noticeWaiting(p outbox.ReplayProgress, now time.Time) {
	if p.Waiting == 0 {
		r.waitingSince = time.Time{}
		if r.bar != nil && r.told {
			r.bar.Describe("replaying")
		}
		return
	}
	if r.waitingSince.IsZero() {
		r.waitingSince = now
	}
	waited := now.Sub(r.waitingSince)
	if waited < waitNotice {
		return
	}
	if r.bar != nil {
		r.bar.Describe("waiting for a dispatcher")
	}
	if r.told {
		return
	}
	r.told = true
	if r.a.stderrTTY {
		if r.bar != nil {
			_ = r.bar.Clear()
		}
		fmt.Fprintf(r.a.stderr, "waiting for a dispatcher to relay the previous batch (%s of it still pending after %s).\n"+
			"Is 'social dispatcher' (or 'social all') running on this database? Without one the replay waits for ever:\n"+
			"press Ctrl-C and run the command it prints with --wait=false, which enqueues without waiting.\n",
			plural(p.Waiting, "row"), waited.Round(time.Second))
		return
	}
	r.a.log.Warn("replay waits for a dispatcher to relay its previous batch; without one running on this database it waits for ever: stop it and run again with --wait=false",
		slog.Int64("waiting_for_dispatcher", p.Waiting), slog.String("waited", waited.Round(time.Second).String()))
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

func (l *idList) String() string {
	if len(*l) == 0 {
		return ""
	}
	return fmt.Sprint([]int64(*l))
}

// Type names the value in help.
func (l *idList) Type() string { return "id" }

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

func (a *app) runOutboxRetryDead(ctx context.Context, ids idList) error {
	pool, err := a.openPool(ctx, true)
	if err != nil {
		return fmt.Errorf("outbox retry-dead: %w", err)
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	n, err := outbox.RetryDead(ctx, pool, ids...)
	fmt.Fprintf(a.stdout, "moved %s back to pending\n", plural(n, "dead row"))
	if err != nil {
		return fmt.Errorf("outbox retry-dead: %w", err)
	}
	if len(ids) > 0 && n < int64(len(ids)) {
		fmt.Fprintf(a.stdout, "(%d of the given ids were not dead)\n", int64(len(ids))-n)
	}
	return nil
}
