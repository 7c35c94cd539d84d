package postgres

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Group commit for PostService.Create.
//
// Every post transaction commits synchronously (a 200 promises the event and the outbox row are
// on disk), and the outbox trigger NOTIFYs the dispatcher. In PostgreSQL ≤ 16 a transaction that
// NOTIFYs holds a cluster-wide lock from pre-commit until its commit record is flushed, so such
// commits cannot share a WAL flush: one fsync per post, whatever the pool size.
//
// createGroup therefore lets concurrent Create calls share a transaction: at most `slots`
// transactions are in flight; a call that finds every slot busy waits, and the next free slot
// commits everything that waited (up to maxBatch posts) at once. Under light load a call gets a
// slot at once and commits alone, as before; under heavy load one fsync and one NOTIFY serve
// many posts. Each caller still gets its answer only after its own rows committed.
//
// Failure modes: if a shared transaction fails, its posts are retried one transaction each, so a
// bad post (e.g. an author deleted meanwhile) fails alone. A caller whose context ends while it
// still waits is removed from the queue and gets the context error: its post was not written.
// A caller whose post is already in a running transaction waits for that transaction's outcome
// (bounded by groupTimeout): when the commit's outcome is unknown to us (connection lost during
// COMMIT), the error says so, as with any single transaction.
type createGroup struct {
	pool     *pgxpool.Pool
	slots    chan struct{}
	maxBatch int

	mu      sync.Mutex
	pending []*createReq
}

// groupTimeout bounds a shared transaction: it runs on behalf of several requests, so it cannot
// use any one request's context.
const groupTimeout = 10 * time.Second

type createReq struct {
	ctx   context.Context
	queue func(*pgx.Batch) error // adds this post's three statements
	done  chan struct{}
	err   error
}

func newCreateGroup(pool *pgxpool.Pool, slots, maxBatch int) *createGroup {
	return &createGroup{pool: pool, slots: make(chan struct{}, slots), maxBatch: maxBatch}
}

// do commits r's statements, alone or together with other waiting calls.
func (g *createGroup) do(ctx context.Context, queue func(*pgx.Batch) error) error {
	r := &createReq{ctx: ctx, queue: queue, done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, r)
	g.mu.Unlock()
	for {
		select {
		case <-r.done:
			return r.err
		case g.slots <- struct{}{}:
			batch := g.take()
			if len(batch) > 0 {
				g.commit(batch)
			}
			<-g.slots
			if !g.isPending(r) {
				// Committed by us or taken by another slot: either way its outcome is coming.
				<-r.done
				return r.err
			}
		case <-ctx.Done():
			if g.withdraw(r) {
				return ctx.Err()
			}
			<-r.done // already in a transaction: its outcome is ours
			return r.err
		}
	}
}

// take removes up to maxBatch waiting calls, dropping those whose context already ended.
func (g *createGroup) take() []*createReq {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := min(len(g.pending), g.maxBatch)
	batch := make([]*createReq, 0, n)
	for _, r := range g.pending[:n] {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.done)
			continue
		}
		batch = append(batch, r)
	}
	g.pending = append(g.pending[:0], g.pending[n:]...)
	return batch
}

func (g *createGroup) isPending(r *createReq) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Contains(g.pending, r)
}

// withdraw removes r from the queue if no transaction took it yet.
func (g *createGroup) withdraw(r *createReq) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := slices.Index(g.pending, r)
	if i < 0 {
		return false
	}
	g.pending = slices.Delete(g.pending, i, i+1)
	return true
}

// commit runs batch as one implicit transaction (one Sync), or, if it fails and holds more than
// one post, each post in its own transaction.
func (g *createGroup) commit(batch []*createReq) {
	if len(batch) == 1 {
		r := batch[0]
		r.err = g.commitOne(r.ctx, r)
		close(r.done)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	b := &pgx.Batch{}
	for _, r := range batch {
		if err := r.queue(b); err != nil {
			r.err = err // encoding failed: never sent
		}
	}
	err := sendBatch(ctx, g.pool, b)
	if err == nil {
		for _, r := range batch {
			close(r.done)
		}
		return
	}
	for _, r := range batch {
		if r.err == nil {
			r.err = g.commitOne(r.ctx, r)
		}
		close(r.done)
	}
}

func (g *createGroup) commitOne(ctx context.Context, r *createReq) error {
	b := &pgx.Batch{}
	if err := r.queue(b); err != nil {
		return err
	}
	return sendBatch(ctx, g.pool, b)
}
