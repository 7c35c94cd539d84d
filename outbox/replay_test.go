package outbox_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

// relayedOutbox is a fresh database with n posts of one author, all relayed at positions 1..n.
func relayedOutbox(t testing.TB, n int) (*pgtest.DB, string) {
	t.Helper()
	db := pgtest.New(t)
	author := opsUser(t, db, "Ann")
	opsPosts(t, db, author, n)
	opsRelayAll(t, db)
	return db, author
}

func TestReplayDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	db, _ := relayedOutbox(t, 12)
	res, err := outbox.Replay(context.Background(), db.Pool, outbox.ReplayOptions{
		ReplayFilter: outbox.ReplayFilter{FromPosition: 3, ToPosition: 9}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Matched != 7 || res.Enqueued != 0 {
		t.Errorf("dry run: %+v, want 7 matched, 0 enqueued", res)
	}
	if n := db.Count(t, "outbox", "status <> 'relayed'"); n != 0 {
		t.Errorf("dry run changed %d rows", n)
	}
}

func TestReplayEnqueuesExactlyTheRange(t *testing.T) {
	t.Parallel()
	db, _ := relayedOutbox(t, 20)
	var seen []outbox.ReplayProgress
	res, err := outbox.Replay(context.Background(), db.Pool, outbox.ReplayOptions{
		ReplayFilter: outbox.ReplayFilter{FromPosition: 5, ToPosition: 12}, BatchSize: 3,
		Progress: func(p outbox.ReplayProgress) { seen = append(seen, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Matched != 8 || res.Enqueued != 8 || !res.Done || res.LastPosition != 12 {
		t.Errorf("result %+v, want 8 matched and enqueued up to 12", res)
	}
	if got := opsPendingPositions(t, db); !slices.Equal(got, span(5, 12)) {
		t.Errorf("pending positions %v, want 5..12", got)
	}
	// Life cycle (outbox/doc.go): replayed rows keep their position and say so.
	if n := db.Count(t, "outbox", "status = 'pending'", "keep_position", "position = id", "attempts = 0"); n != 8 {
		t.Errorf("%d pending rows keep their position, want 8", n)
	}
	if len(seen) != 4 || seen[0].Matched != 8 || seen[len(seen)-1].Enqueued != 8 {
		t.Errorf("progress %+v: want the count, then 3 batches of at most 3", seen)
	}
}

// TestReplayOpenRangeStopsAtLastRelayed: without --to-position, rows relayed while the replay runs
// are live traffic and are left alone.
func TestReplayOpenRangeStopsAtLastRelayed(t *testing.T) {
	t.Parallel()
	db, author := relayedOutbox(t, 6)
	opsPosts(t, db, author, 2) // pending, no position yet: not replayable
	res, err := outbox.Replay(context.Background(), db.Pool, outbox.ReplayOptions{
		ReplayFilter: outbox.ReplayFilter{FromPosition: 4}, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.ToPosition != 6 || res.Enqueued != 3 {
		t.Errorf("result %+v, want 3 enqueued up to 6", res)
	}
}

func TestReplayFilters(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ann, bob := opsUser(t, db, "Ann"), opsUser(t, db, "Bob")
	annPosts := opsPosts(t, db, ann, 3) // outbox 1..3
	opsPosts(t, db, bob, 3)             // 4..6
	posts := postgres.NewPostService(db.Pool)
	if err := posts.Update(context.Background(), ann, annPosts[0], "edited"); err != nil { // 7
		t.Fatal(err)
	}
	if err := posts.Delete(context.Background(), ann, annPosts[1]); err != nil { // 8
		t.Fatal(err)
	}
	opsRelayAll(t, db)
	db.Exec(t, `UPDATE events SET created_at = '2025-01-01T00:00:00Z' WHERE id = (SELECT event_id FROM outbox WHERE id = 4)`)
	db.Exec(t, `UPDATE events SET created_at = '2025-01-02T00:00:00Z' WHERE id = (SELECT event_id FROM outbox WHERE id = 5)`)

	cases := []struct {
		name   string
		filter outbox.ReplayFilter
		want   []int64
	}{
		{"author", outbox.ReplayFilter{FromPosition: 1, Author: ann}, []int64{1, 2, 3, 7, 8}},
		{"type", outbox.ReplayFilter{FromPosition: 1, Types: []string{domain.EventPostUpdated, domain.EventPostDeleted}}, []int64{7, 8}},
		{"since until", outbox.ReplayFilter{FromPosition: 1,
			Since: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)}, []int64{4}},
		{"author and range", outbox.ReplayFilter{FromPosition: 2, ToPosition: 7, Author: ann, Types: []string{domain.EventPostCreated}}, []int64{2, 3}},
	}
	for _, c := range cases {
		// Sequential: the cases share the database and each restores it.
		res, err := outbox.Replay(context.Background(), db.Pool, outbox.ReplayOptions{ReplayFilter: c.filter, BatchSize: 2})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := opsPendingPositions(t, db); !slices.Equal(got, c.want) || res.Enqueued != int64(len(c.want)) {
			t.Errorf("%s: enqueued %d, pending positions %v, want %v", c.name, res.Enqueued, got, c.want)
		}
		opsRelayAll(t, db)
	}
}

// TestReplayInterruptedAndResumedEnqueuesNoRowTwice cancels a replay right after its first batch
// (as Ctrl-C would), lets the "dispatcher" relay that batch, then resumes from the position the
// first run reports: every row of the range is enqueued exactly once and none outside it.
func TestReplayInterruptedAndResumedEnqueuesNoRowTwice(t *testing.T) {
	t.Parallel()
	db, _ := relayedOutbox(t, 20)
	filter := outbox.ReplayFilter{FromPosition: 3, ToPosition: 17}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, err := outbox.Replay(ctx, db.Pool, outbox.ReplayOptions{ReplayFilter: filter, BatchSize: 4, WaitRelayed: true,
		Progress: func(p outbox.ReplayProgress) {
			if p.Enqueued > 0 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted replay: %v, want context.Canceled", err)
	}
	if first.Enqueued != 4 || first.LastPosition != 6 || first.Done || first.ResumeFrom(filter) != 7 {
		t.Fatalf("interrupted replay: %+v, want 4 enqueued up to 6, resume from 7", first)
	}
	// Replayed rows are marked so we can count how often each was enqueued: the dispatcher relays
	// the first batch before the operator resumes.
	db.Exec(t, `UPDATE outbox SET status = 'relayed', relayed_at = now(), last_error = 'replayed once' WHERE status = 'pending'`)

	filter.FromPosition = first.ResumeFrom(filter)
	second, err := outbox.Replay(context.Background(), db.Pool, outbox.ReplayOptions{ReplayFilter: filter, BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	if second.Enqueued != 11 || !second.Done {
		t.Errorf("resumed replay: %+v, want 11 enqueued", second)
	}
	if got := opsPendingPositions(t, db); !slices.Equal(got, span(7, 17)) {
		t.Errorf("pending after resume %v, want 7..17", got)
	}
	if n := db.Count(t, "outbox", "last_error = 'replayed once'", "status = 'relayed'", "position BETWEEN 3 AND 6"); n != 4 {
		t.Errorf("%d rows of the first batch left alone, want 4", n)
	}
	if n := db.Count(t, "outbox", "status = 'pending'", "position NOT BETWEEN 3 AND 17"); n != 0 {
		t.Errorf("%d rows outside the range enqueued", n)
	}
}

// TestReplayRerunSkipsRowsStillPending: running the very same command again while the dispatcher
// has not caught up enqueues (and counts) only the rest.
func TestReplayRerunSkipsRowsStillPending(t *testing.T) {
	t.Parallel()
	db, _ := relayedOutbox(t, 10)
	filter := outbox.ReplayFilter{FromPosition: 1, ToPosition: 10}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := outbox.Replay(ctx, db.Pool, outbox.ReplayOptions{ReplayFilter: filter, BatchSize: 3, WaitRelayed: true,
		Progress: func(p outbox.ReplayProgress) {
			if p.Enqueued > 0 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted replay: %v", err)
	}
	res, err := outbox.Replay(context.Background(), db.Pool, outbox.ReplayOptions{ReplayFilter: filter, BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Matched != 7 || res.Enqueued != 7 {
		t.Errorf("rerun: %+v, want 7 matched and enqueued (3 were pending already)", res)
	}
	if got := opsPendingPositions(t, db); !slices.Equal(got, span(1, 10)) {
		t.Errorf("pending %v, want 1..10", got)
	}
}

// TestConcurrentReplaysEnqueueEachRowOnce: two operators run the same replay at once.
func TestConcurrentReplaysEnqueueEachRowOnce(t *testing.T) {
	t.Parallel()
	db, _ := relayedOutbox(t, 60)
	var wg sync.WaitGroup
	results := make([]outbox.ReplayResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			results[i], err = outbox.Replay(context.Background(), db.Pool, outbox.ReplayOptions{
				ReplayFilter: outbox.ReplayFilter{FromPosition: 1, ToPosition: 60}, BatchSize: 5})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if total := results[0].Enqueued + results[1].Enqueued; total != 60 {
		t.Errorf("enqueued %d + %d, want 60 in all", results[0].Enqueued, results[1].Enqueued)
	}
}

// TestReplayWaitsForTheDispatcher: with WaitRelayed at most one batch of replayed rows is pending
// at any time. The stand-in dispatcher here is SQL on the real database; the end-to-end test in
// cmd/social runs the real one.
func TestReplayWaitsForTheDispatcher(t *testing.T) {
	t.Parallel()
	db, _ := relayedOutbox(t, 9)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	maxPending := 0
	res, err := outbox.Replay(ctx, db.Pool, outbox.ReplayOptions{
		ReplayFilter: outbox.ReplayFilter{FromPosition: 1}, BatchSize: 2, WaitRelayed: true, PollInterval: 5 * time.Millisecond,
		Progress: func(p outbox.ReplayProgress) {
			maxPending = max(maxPending, db.Count(t, "outbox", "status = 'pending'"))
			if p.Waiting > 0 {
				opsRelayAll(t, db)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Enqueued != 9 || maxPending > 2 {
		t.Errorf("enqueued %d with up to %d pending at once, want 9 with at most 2", res.Enqueued, maxPending)
	}
}

func TestReplayRejectsBadFilters(t *testing.T) {
	t.Parallel()
	db, _ := relayedOutbox(t, 3)
	for _, f := range []outbox.ReplayFilter{
		{FromPosition: 5, ToPosition: 2},
		{FromPosition: -1},
		{FromPosition: 1, Types: []string{"post.liked"}},
		{FromPosition: 1, Author: "bob"},
		{FromPosition: 1, Since: time.Now(), Until: time.Now().Add(-time.Hour)},
	} {
		if _, err := outbox.Replay(context.Background(), db.Pool, outbox.ReplayOptions{ReplayFilter: f}); err == nil {
			t.Errorf("filter %+v accepted", f)
		}
	}
	if n := db.Count(t, "outbox", "status <> 'relayed'"); n != 0 {
		t.Errorf("rejected replays changed %d rows", n)
	}
}

func TestRetryDeadMovesDeadRowsToPending(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	opsPosts(t, db, opsUser(t, db, "Dee"), 5)
	db.Exec(t, `UPDATE outbox SET status = 'dead', attempts = 10, last_error = 'nack' WHERE id IN (1, 2, 3)`)
	db.Exec(t, `UPDATE outbox SET status = 'relayed', position = id, relayed_at = now() WHERE id IN (4, 5)`)

	n, err := outbox.RetryDead(context.Background(), db.Pool, 2, 4, 99) // 4 is relayed, 99 unknown: ignored
	if err != nil || n != 1 {
		t.Fatalf("retry id 2: moved %d, %v; want 1", n, err)
	}
	if c := db.Count(t, "outbox", "id = 2", "status = 'pending'", "attempts = 0"); c != 1 {
		t.Error("row 2 is not pending with attempts 0")
	}
	n, err = outbox.RetryDead(context.Background(), db.Pool)
	if err != nil || n != 2 {
		t.Fatalf("retry all: moved %d, %v; want 2", n, err)
	}
	if c := db.Count(t, "outbox", "status = 'pending'", "attempts = 0"); c != 3 {
		t.Errorf("%d pending rows with attempts 0, want 3", c)
	}
	if c := db.Count(t, "outbox", "status = 'relayed'"); c != 2 {
		t.Errorf("relayed rows touched: %d left, want 2", c)
	}
}
