package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/internal/wait"
	"github.com/socialnet/social/outbox"
)

// syncBuffer is a bytes.Buffer safe for the writes of a running command and the reads of a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cliResult is what one `social ...` invocation printed and returned.
type cliResult struct {
	stdout, stderr string
	err            error
}

// runCLI runs the binary's app in-process against databaseURL, as main would.
func runCLI(ctx context.Context, databaseURL string, args ...string) cliResult {
	var stdout, stderr syncBuffer
	a := &app{stdout: &stdout, stderr: &stderr}
	err := a.run(ctx, args, map[string]string{"DATABASE_URL": databaseURL, "LOG_LEVEL": "info"})
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// cliOutbox is a fresh database with n posts by one author, all relayed at positions 1..n
// (position = outbox id in a fresh database), as a dispatcher would leave them.
func cliOutbox(t testing.TB, n int) (*pgtest.DB, string) {
	t.Helper()
	db := pgtest.New(t)
	author, err := postgres.NewUserService(db.Pool).Register(context.Background(),
		domain.Registration{FirstName: "Ann", SecondName: "Ops", Birthdate: "1990-01-02", City: "Riga", Password: "x"},
		time.Date(1990, 1, 2, 0, 0, 0, 0, time.UTC), "hash")
	if err != nil {
		t.Fatal(err)
	}
	posts := postgres.NewPostService(db.Pool)
	for i := range n {
		if _, err := posts.Create(context.Background(), author, fmt.Sprintf("post %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	db.Exec(t, `UPDATE outbox SET status = 'relayed', position = id, relayed_at = now()`)
	db.Exec(t, `SELECT setval('outbox_position_seq', (SELECT max(id) FROM outbox))`)
	return db, author
}

func TestOutboxStatusCommand(t *testing.T) {
	t.Parallel()
	db, _ := cliOutbox(t, 12)
	db.Exec(t, `UPDATE outbox SET status = 'pending', position = NULL, relayed_at = NULL WHERE id > 3`)
	db.Exec(t, `UPDATE outbox SET status = 'dead', attempts = 10, last_error = 'nack: NOT_FOUND - no exchange' WHERE id IN (4, 5)`)

	r := runCLI(context.Background(), db.URL, "outbox", "status")
	if r.err != nil {
		t.Fatalf("status: %v\n%s", r.err, r.stderr)
	}
	for _, want := range []string{"pending rows:           7", "dead rows:              2", "last relayed position:  3",
		"(3 in the last minute)", "nack: NOT_FOUND - no exchange", "id 5"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = runCLI(context.Background(), db.URL, "outbox", "status", "--json")
	if r.err != nil {
		t.Fatalf("status --json: %v", r.err)
	}
	var s outbox.Status
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("status --json printed %q: %v", r.stdout, err)
	}
	if s.Pending != 7 || s.Dead != 2 || len(s.DeadRows) != 2 || s.LastRelayedPosition != 3 || s.RelayedLastMinute != 3 {
		t.Errorf("status --json: %+v", s)
	}
}

func TestOutboxStatusWithoutDatabase(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := runCLI(context.Background(), "postgres://postgres@127.0.0.1:1/social?sslmode=disable&connect_timeout=2", "outbox", "status")
	if r.err == nil {
		t.Fatal("status succeeded without a database")
	}
	if !strings.Contains(r.err.Error(), "connect to database") {
		t.Errorf("unclear message: %v", r.err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %s to give up", d)
	}
}

func TestOutboxStatusRefusesOutdatedSchema(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmpty(t)
	r := runCLI(context.Background(), db.URL, "outbox", "status")
	if r.err == nil || !strings.Contains(r.err.Error(), "social migrate") {
		t.Errorf("status on an empty database: %v", r.err)
	}
}

func TestOutboxReplayCommand(t *testing.T) {
	t.Parallel()
	db, _ := cliOutbox(t, 30)

	r := runCLI(context.Background(), db.URL, "outbox", "replay", "--from-position", "5", "--to-position", "24", "--dry-run")
	if r.err != nil || !strings.Contains(r.stdout, "dry run: 20 events would be enqueued (positions 5..24)") {
		t.Fatalf("dry run: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if n := db.Count(t, "outbox", "status <> 'relayed'"); n != 0 {
		t.Fatalf("dry run wrote %d rows", n)
	}

	r = runCLI(context.Background(), db.URL, "outbox", "replay", "--from-position", "5", "--to-position", "24",
		"--batch-size", "7", "--wait=false", "--type", "post.created")
	if r.err != nil || !strings.Contains(r.stdout, "enqueued 20 events for relay (positions 5..24)") {
		t.Fatalf("replay: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if n := db.Count(t, "outbox", "status = 'pending'", "keep_position", "position BETWEEN 5 AND 24"); n != 20 {
		t.Errorf("%d rows pending in range, want 20", n)
	}
	if n := db.Count(t, "outbox", "status = 'pending'", "position NOT BETWEEN 5 AND 24"); n != 0 {
		t.Errorf("%d rows outside the range enqueued", n)
	}
	if !strings.Contains(r.stderr, `"msg":"replay progress"`) {
		t.Errorf("no progress log lines when stderr is not a terminal:\n%s", r.stderr)
	}
}

// TestOutboxReplayInterruptedPrintsResume: Ctrl-C (ctx cancelled) after the first batch; the
// printed command resumes the replay and the two runs together enqueue the range exactly once.
func TestOutboxReplayInterruptedPrintsResume(t *testing.T) {
	t.Parallel()
	db, _ := cliOutbox(t, 20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan cliResult, 1)
	go func() {
		// --wait (the default) holds the replay after its first batch: no dispatcher runs here.
		done <- runCLI(ctx, db.URL, "outbox", "replay", "--from-position", "2", "--to-position", "15", "--batch-size", "4")
	}()
	wait.For(t, 10*time.Second, "the first batch enqueued", func() bool { return db.Count(t, "outbox", "status = 'pending'") > 0 })
	cancel()
	r := <-done
	if r.err == nil || !strings.Contains(r.err.Error(), "interrupted") {
		t.Fatalf("interrupted replay returned %v", r.err)
	}
	if !strings.Contains(r.stdout, "enqueued 4 events") {
		t.Errorf("interrupted replay printed %q", r.stdout)
	}
	_, resume, ok := strings.Cut(r.err.Error(), "to continue, run: social ")
	if !ok || !strings.Contains(resume, "--from-position 6 --to-position 15") {
		t.Fatalf("no resume command in %q", r.err)
	}
	// The dispatcher relays the first batch; then the operator resumes.
	db.Exec(t, `UPDATE outbox SET status = 'relayed', last_error = 'replayed once' WHERE status = 'pending'`)
	r = runCLI(context.Background(), db.URL, append(strings.Fields(resume), "--wait=false")...)
	if r.err != nil || !strings.Contains(r.stdout, "enqueued 10 events") {
		t.Fatalf("resumed replay: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if n := db.Count(t, "outbox", "status = 'pending'", "position BETWEEN 6 AND 15"); n != 10 {
		t.Errorf("%d rows pending after resume, want 10", n)
	}
	if n := db.Count(t, "outbox", "status = 'relayed'", "last_error = 'replayed once'"); n != 4 {
		t.Errorf("first batch enqueued again: %d of 4 left relayed", n)
	}
}

func TestOutboxBadFlagsWriteNothing(t *testing.T) {
	t.Parallel()
	db, _ := cliOutbox(t, 5)
	for _, args := range [][]string{
		{"outbox", "replay"},
		{"outbox", "replay", "--from-position", "5", "--to-position", "2"},
		{"outbox", "replay", "--from-position", "1", "--type", "post.liked"},
		{"outbox", "replay", "--from-position", "1", "--type", "post.created,"},
		{"outbox", "replay", "--from-position", "1", "--since", "yesterday"},
		{"outbox", "replay", "--from-position", "1", "--since", "2025-02-01T00:00:00Z", "--until", "2025-01-01T00:00:00Z"},
		{"outbox", "replay", "--from-position", "1", "--author", "bob"},
		{"outbox", "replay", "--from-position", "x"},
		{"outbox", "replay", "--from-position", "-3"},
		{"outbox", "replay", "--from-position", "1", "--batch-size", "0"},
		{"outbox", "replay", "--from-position", "1", "--bogus"},
		{"outbox", "replay", "--from-position", "1", "extra"},
		{"outbox", "retry-dead", "--id", "x"},
		{"outbox", "status", "--yaml"},
		{"outbox", "frobnicate"},
		{"outbox"},
	} {
		r := runCLI(context.Background(), db.URL, args...)
		if r.err == nil {
			t.Errorf("%v succeeded", args)
			continue
		}
		if msg := r.err.Error() + r.stderr; strings.TrimSpace(msg) == "usage" {
			t.Errorf("%v: no message for the operator", args)
		}
	}
	if n := db.Count(t, "outbox", "status <> 'relayed'"); n != 0 {
		t.Errorf("bad flags changed %d rows", n)
	}
}

func TestOutboxRetryDeadCommand(t *testing.T) {
	t.Parallel()
	db, _ := cliOutbox(t, 6)
	db.Exec(t, `UPDATE outbox SET status = 'dead', attempts = 10, position = NULL WHERE id IN (2, 3, 4)`)
	r := runCLI(context.Background(), db.URL, "outbox", "retry-dead", "--id", "2", "--id", "3,6")
	if r.err != nil || !strings.Contains(r.stdout, "moved 2 dead rows back to pending") {
		t.Fatalf("retry-dead --id: %v\n%s", r.err, r.stdout)
	}
	r = runCLI(context.Background(), db.URL, "outbox", "retry-dead")
	if r.err != nil || !strings.Contains(r.stdout, "moved 1 dead row back") {
		t.Fatalf("retry-dead: %v\n%s", r.err, r.stdout)
	}
	if n := db.Count(t, "outbox", "status = 'pending'", "attempts = 0"); n != 3 {
		t.Errorf("%d pending rows with attempts 0, want 3", n)
	}
}

// TestReplaySaysWhenItWaitsForADispatcher: a replay held by the dispatcher says so after a few
// seconds, once, and how not to wait: on a terminal above the bar, else as a warning log line.
func TestReplaySaysWhenItWaitsForADispatcher(t *testing.T) {
	for _, tty := range []bool{true, false} {
		var stderr syncBuffer
		a := &app{stdout: &bytes.Buffer{}, stderr: &stderr, stderrTTY: tty}
		a.log = newLogger("info", &stderr, tty)
		r := a.newReplayReporter(false)
		now := time.Unix(1000, 0)
		r.now = func() time.Time { return now }
		step := func(d time.Duration, waiting int64) {
			now = now.Add(d)
			r.progress(outbox.ReplayProgress{Matched: 400, Enqueued: 200, Position: 200, Waiting: waiting})
		}
		step(0, 0) // first batch enqueued
		step(100*time.Millisecond, 200)
		step(2*time.Second, 200)
		if strings.Contains(stderr.String(), "--wait=false") {
			t.Fatalf("tty=%v: told after 2s already: %s", tty, stderr.String())
		}
		step(2*time.Second, 150)
		step(5*time.Second, 150)
		out := stderr.String()
		if n := strings.Count(out, "--wait=false"); n != 1 {
			t.Fatalf("tty=%v: the notice appears %d times, want once:\n%s", tty, n, out)
		}
		if !strings.Contains(out, "dispatcher") {
			t.Errorf("tty=%v: notice does not name the dispatcher:\n%s", tty, out)
		}
		if tty && !strings.Contains(out, "150 rows of it still pending") {
			t.Errorf("terminal notice lacks the count:\n%s", out)
		}
	}
}
