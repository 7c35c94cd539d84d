package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
)

// TestPostCreateGroupCommitKeepsEachPostAtomic sends many concurrent Creates, some by an unknown
// author, so that shared transactions form and some of them fail: every good post must be stored
// with its event and outbox row, every bad one must fail alone with EUNAUTHORIZED.
func TestPostCreateGroupCommitKeepsEachPostAtomic(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	users := postgres.NewUserService(db.Pool)
	author, err := users.Register(ctx, domain.Registration{FirstName: "A", SecondName: "B", Password: "x"}, time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC), "hash")
	if err != nil {
		t.Fatal(err)
	}
	posts := postgres.NewPostService(db.Pool)
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := author
			if i%10 == 0 {
				who = uuid.NewString() // unknown author: the posts FK fails
			}
			_, errs[i] = posts.Create(ctx, who, fmt.Sprintf("post %d", i))
		}()
	}
	wg.Wait()
	good := 0
	for i, err := range errs {
		switch {
		case i%10 == 0 && domain.ErrorCode(err) != domain.EUNAUTHORIZED:
			t.Errorf("post %d by an unknown author: got %v, want EUNAUTHORIZED", i, err)
		case i%10 != 0 && err != nil:
			t.Errorf("post %d: %v", i, err)
		case i%10 != 0:
			good++
		}
	}
	var nPosts, nOutbox, nEvents int
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM outbox),
		(SELECT count(*) FROM events WHERE type = 'post.created')`).Scan(&nPosts, &nOutbox, &nEvents); err != nil {
		t.Fatal(err)
	}
	if nPosts != good || nOutbox != good || nEvents != good {
		t.Fatalf("posts %d, outbox %d, events %d: want %d each", nPosts, nOutbox, nEvents, good)
	}
}

// TestPostCreateCancelledWhileWaitingWritesNothing: a call whose context is already done fails
// with the context error and leaves no row behind.
func TestPostCreateCancelledWhileWaitingWritesNothing(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	author, err := postgres.NewUserService(db.Pool).Register(ctx, domain.Registration{FirstName: "A", SecondName: "B", Password: "x"}, time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC), "hash")
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := postgres.NewPostService(db.Pool).Create(cctx, author, "never"); err == nil {
		t.Fatal("Create with a cancelled context succeeded")
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("outbox rows %d (%v), want 0", n, err)
	}
}
