package outbox

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
)

// A leader cut off mid-batch may still mark that batch later from its pool connection, after its
// successor took over. The successor forgets the batch (resetUnfinished) and claims its rows again
// with fresh positions; the late mark must then change nothing, or a row could end up relayed
// at the old position while its new frame went out at another.
func TestLateMarkOfAForgottenBatchChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	author, err := postgres.NewUserService(db.Pool).Register(ctx,
		domain.Registration{FirstName: "A", SecondName: "B", Birthdate: "1990-01-02", City: "C", Password: "x"},
		time.Date(1990, 1, 2, 0, 0, 0, 0, time.UTC), "hash")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := postgres.NewPostService(db.Pool).Create(ctx, author, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	oldLeader, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer oldLeader.Release()
	first, err := claimBatch(ctx, oldLeader.Conn(), 10)
	rows, inflight := first.rows, first.inflight
	if err != nil || len(rows) != 3 || inflight == 0 {
		t.Fatalf("claim: %d rows, inflight batch %d, %v", len(rows), inflight, err)
	}
	if n := db.Count(t, "outbox_inflight"); n != 1 {
		t.Fatalf("%d in-flight batches after a claim, want 1", n)
	}

	newLeader, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer newLeader.Release()
	if n, err := resetUnfinished(ctx, newLeader.Conn()); err != nil || n != 3 {
		t.Fatalf("reset: %d rows, %v; want 3", n, err)
	}

	results := make([]result, len(rows))
	for i, r := range rows {
		results[i] = result{row: r, outcome: relayed, confirmedAt: time.Now()}
	}
	if _, err := markBatch(ctx, oldLeader.Conn(), results, inflight, 10); err != nil {
		t.Fatal(err)
	}
	if n := db.Count(t, "outbox", "status = 'pending'", "position IS NULL"); n != 3 {
		t.Fatalf("after the late mark %d of 3 rows are still pending without a position", n)
	}

	second, err := claimBatch(ctx, newLeader.Conn(), 10)
	again, inflight2 := second.rows, second.inflight
	if err != nil || len(again) != 3 {
		t.Fatalf("claim again: %d rows, %v", len(again), err)
	}
	if again[0].position <= rows[2].position {
		t.Errorf("reclaimed at %d, not above the forgotten batch's %d", again[0].position, rows[2].position)
	}
	// The successor's own mark works and empties outbox_inflight.
	for i, r := range again {
		results[i] = result{row: r, outcome: relayed, confirmedAt: time.Now()}
	}
	if _, err := markBatch(ctx, newLeader.Conn(), results, inflight2, 10); err != nil {
		t.Fatal(err)
	}
	if n := db.Count(t, "outbox", "status = 'relayed'", fmt.Sprintf("position > %d", rows[2].position)); n != 3 {
		t.Errorf("%d of 3 rows relayed at their new positions", n)
	}
	if n := db.Count(t, "outbox_inflight"); n != 0 {
		t.Errorf("%d in-flight batches left", n)
	}
}
