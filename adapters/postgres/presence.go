package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/internal/setting"
)

// Presence is one realtime instance's registration in PostgreSQL (design.md §3): a lease row in
// realtime_instances, renewed while the instance lives, and a presence row per user holding at
// least one socket here (migrations/0012). The dispatcher routes an event to this instance only
// through these rows, so the hand-over rule is: Join returns once the user's row is committed,
// and the caller reads the user's resume only after that (a row relayed later is routed here; a
// row relayed earlier is in the resume's snapshot).
//
// Rows are only inserted and deleted, never updated: the dispatcher's copy of presence finds new
// rows by the transaction that inserted them (outbox/presence.go, migrations/0014).
//
// Writes are batched: one goroutine (Run) writes every join and leave that queued meanwhile in one
// statement, so a reconnect storm costs a statement per round trip, not per user. Per user the
// state is a count of sockets and whether the row is stored; at most one write per user is in
// flight, so a join and a leave of the same user never overtake each other.
//
// Failure modes: with PostgreSQL down, Join fails (the hub answers 503) and open sockets are
// untouched; a lease that passed (the database was away longer than the lease, or this process
// stalled) or a registration that vanished (the unlogged tables were truncated by a crash
// recovery, or another instance cleaned up our expired row) means routing skipped this instance
// for a while: Run registers again with every user still connected, then calls OnLost so the hub
// fills each open socket's gap from the outbox.
type Presence struct {
	cfg PresenceConfig

	mu         sync.Mutex
	users      map[string]*presentUser
	queue      []string // users whose row must be written or deleted
	wake       chan struct{}
	registered atomic.Bool  // the lease is live as far as we know; Join refuses otherwise
	writes     atomic.Int64 // presence statements run (batching shows as fewer writes than joins)
}

// presentUser is one user's state while wanted, stored or busy.
type presentUser struct {
	sockets int  // Join calls not yet undone by Leave: the row is wanted while sockets > 0
	stored  bool // the row is committed in the current registration
	busy    bool // queued or being written: no second write for this user meanwhile
	waiters []chan error
}

// PresenceConfig configures a Presence. Pool and InstanceID are required.
type PresenceConfig struct {
	Pool *pgxpool.Pool
	// InstanceID is this realtime instance's id: its routing key and its queue's binding.
	InstanceID string
	// Lease is how long the registration lives without a renewal (default 10s); it is renewed
	// every Lease/5. An instance killed without a goodbye stops receiving frames after at most
	// Lease; its users reconnect elsewhere anyway.
	Lease time.Duration
	// BeforeRegister and OnLost are called (on Run's goroutine) around registering again after
	// the registration lapsed: frames relayed meanwhile skipped this instance. The hub holds its
	// sockets' writes before (so a frame routed once the registration commits cannot move a
	// socket past its gap) and fills their gaps after (websocket.Hub.Hold, Refill).
	BeforeRegister, OnLost func()
	// Logger; nil discards.
	Logger *slog.Logger
}

// DefaultPresenceLease is PresenceConfig.Lease when unset.
const DefaultPresenceLease = 10 * time.Second

// ErrNotRegistered is Join's answer while the instance has no live registration (starting, or
// the database is unreachable): a socket opened now would receive nothing.
var ErrNotRegistered = errors.New("realtime instance not registered in the database")

// NewPresence returns a Presence; Run registers it.
func NewPresence(cfg PresenceConfig) (*Presence, error) {
	if cfg.Pool == nil || cfg.InstanceID == "" {
		return nil, errors.New("presence: Pool and InstanceID are required")
	}
	setting.Default(&cfg.Lease, DefaultPresenceLease)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Presence{cfg: cfg, users: map[string]*presentUser{}, wake: make(chan struct{}, 1)}, nil
}

// Ready reports whether the instance is registered (for /readyz).
func (p *Presence) Ready(context.Context) error {
	if !p.registered.Load() {
		return ErrNotRegistered
	}
	return nil
}

// Join counts one more socket of userID and returns once the user's presence row is committed:
// from then on every event relayed to the user is routed to this instance. On error the socket is
// not counted.
func (p *Presence) Join(ctx context.Context, userID string) error {
	if !p.registered.Load() {
		return ErrNotRegistered
	}
	p.mu.Lock()
	u := p.users[userID]
	if u == nil {
		u = &presentUser{}
		p.users[userID] = u
	}
	u.sockets++
	if u.stored && !u.busy {
		p.mu.Unlock()
		return nil
	}
	w := make(chan error, 1)
	u.waiters = append(u.waiters, w)
	p.scheduleLocked(userID, u)
	p.mu.Unlock()
	select {
	case err := <-w:
		if err != nil {
			p.Leave(userID)
			return err
		}
		return nil
	case <-ctx.Done():
		p.Leave(userID)
		return ctx.Err()
	}
}

// Leave counts one socket of userID less; after the last the row is deleted (asynchronously: a
// row left a moment longer only routes frames the hub drops).
func (p *Presence) Leave(userID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.users[userID]
	if u == nil || u.sockets == 0 {
		return
	}
	u.sockets--
	if u.sockets > 0 {
		return
	}
	if !u.stored && !u.busy {
		delete(p.users, userID)
		return
	}
	p.scheduleLocked(userID, u)
}

func (p *Presence) scheduleLocked(userID string, u *presentUser) {
	if u.busy {
		return
	}
	u.busy = true
	p.queue = append(p.queue, userID)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run registers the instance (retrying while the database is down), then writes presence and
// renews the lease until ctx ends; it then deletes the registration, so routing stops at once.
func (p *Presence) Run(ctx context.Context) error {
	log := p.cfg.Logger
	failures := 0
	for !p.registered.Load() {
		if err := p.register(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			if failures == 1 || failures%30 == 0 {
				log.Warn("presence: cannot register the realtime instance; retrying", slog.Any("err", err))
			}
			if !sleepCtx(ctx, min(time.Duration(failures)*200*time.Millisecond, 2*time.Second)) {
				return nil
			}
		}
	}
	log.Info("presence: realtime instance registered")
	defer p.unregister(context.WithoutCancel(ctx))

	renew := time.NewTicker(p.cfg.Lease / 5)
	defer renew.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-renew.C:
			p.renew(ctx)
		case <-p.wake:
			if err := p.flush(ctx); err != nil && ctx.Err() == nil {
				// Waiters were answered; back off so a down database is not hammered, then
				// retry what is still queued (the leaves).
				backoff = min(max(2*backoff, 100*time.Millisecond), 2*time.Second)
				log.Warn("presence: write failed", slog.Any("err", err), slog.Duration("retry_in", backoff))
				if !sleepCtx(ctx, backoff) {
					return nil
				}
				p.signal()
				continue
			}
			backoff = 0
		}
	}
}

func (p *Presence) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// register writes the lease row and every wanted user in one transaction. It runs on Run's
// goroutine, so no flush is in flight: every user is settled (not busy) but those queued since.
func (p *Presence) register(ctx context.Context) error {
	p.mu.Lock()
	var want []string
	for id, u := range p.users {
		if u.sockets > 0 {
			want = append(want, id)
		}
	}
	p.mu.Unlock()
	err := pgx.BeginFunc(ctx, p.cfg.Pool, func(tx pgx.Tx) error {
		// Two statements: a data-modifying CTE's DELETE and INSERT of the same key would both
		// see the old snapshot.
		if _, err := tx.Exec(ctx, `DELETE FROM realtime_instances WHERE id = $1 OR lease_until < now()`, p.cfg.InstanceID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO realtime_instances (id, lease_until) VALUES ($1, now() + make_interval(secs => $2))`,
			p.cfg.InstanceID, p.cfg.Lease.Seconds()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO presence (user_id, instance_id) SELECT u, $1 FROM unnest($2::uuid[]) AS u`, p.cfg.InstanceID, want)
		return err
	})
	if err != nil {
		return fmt.Errorf("register realtime instance: %w", err)
	}
	p.mu.Lock()
	for _, u := range p.users {
		u.stored = false
	}
	for _, id := range want {
		if u := p.users[id]; u != nil {
			u.stored = true
			if u.sockets == 0 {
				p.scheduleLocked(id, u) // left during the registration
			}
		}
	}
	p.mu.Unlock()
	p.registered.Store(true)
	return nil
}

// renew extends the lease if it is still live. A lease found lapsed or gone means routing skipped
// this instance: register again, then OnLost. A database that cannot be reached changes nothing
// (open sockets keep their frames; the next renewal tries again).
func (p *Presence) renew(ctx context.Context) {
	// Every live instance also deletes the registrations that lapsed (their presence goes by
	// cascade): an instance killed without a goodbye is forgotten within a renewal of its lease.
	tag, err := p.cfg.Pool.Exec(ctx, `
		WITH lapsed AS (DELETE FROM realtime_instances WHERE lease_until < now() AND id <> $1)
		UPDATE realtime_instances SET lease_until = now() + make_interval(secs => $2)
		WHERE id = $1 AND lease_until > now()`, p.cfg.InstanceID, p.cfg.Lease.Seconds())
	if err != nil {
		if ctx.Err() == nil {
			p.cfg.Logger.Warn("presence: cannot renew the lease", slog.Any("err", err))
		}
		return
	}
	if tag.RowsAffected() == 1 {
		return
	}
	p.lost(ctx, "lease lapsed or registration gone")
}

// lost registers again after the registration lapsed and tells OnLost.
func (p *Presence) lost(ctx context.Context, why string) {
	p.registered.Store(false)
	p.cfg.Logger.Warn("presence: registration lost; registering again and filling open sockets' gaps", slog.String("why", why))
	if p.cfg.BeforeRegister != nil {
		p.cfg.BeforeRegister()
	}
	if err := p.register(ctx); err != nil {
		if ctx.Err() == nil {
			p.cfg.Logger.Warn("presence: register again", slog.Any("err", err))
		}
		return // the next renewal finds it still gone and tries again
	}
	if p.cfg.OnLost != nil {
		p.cfg.OnLost()
	}
}

// flush writes every queued user's row (insert or delete) in one statement.
func (p *Presence) flush(ctx context.Context) error {
	p.mu.Lock()
	var add, del []string
	queued := p.queue
	p.queue = nil
	for _, id := range queued {
		u := p.users[id]
		switch {
		case u == nil:
		case u.sockets > 0 && !u.stored:
			add = append(add, id)
		case u.sockets == 0 && u.stored:
			del = append(del, id)
		default:
			p.settleLocked(id, u, nil)
		}
	}
	p.mu.Unlock()
	if len(add) == 0 && len(del) == 0 {
		return nil
	}
	p.writes.Add(1)
	_, err := p.cfg.Pool.Exec(ctx, `
		WITH gone AS (DELETE FROM presence WHERE instance_id = $1 AND user_id = ANY($3::uuid[]))
		INSERT INTO presence (user_id, instance_id) SELECT u, $1 FROM unnest($2::uuid[]) AS u
		ON CONFLICT DO NOTHING`, p.cfg.InstanceID, add, del)
	p.mu.Lock()
	for _, id := range add {
		if u := p.users[id]; u != nil {
			u.stored = err == nil
			p.settleLocked(id, u, err)
		}
	}
	for _, id := range del {
		if u := p.users[id]; u != nil {
			u.stored = err != nil
			if err != nil {
				u.busy = false
				p.scheduleLocked(id, u) // retried after the backoff
				continue
			}
			p.settleLocked(id, u, nil)
		}
	}
	p.mu.Unlock()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" {
		// The registration row is gone (cleaned up as lapsed, or truncated): register again.
		p.lost(ctx, "registration gone at a presence write")
		return nil
	}
	if err != nil {
		return fmt.Errorf("write presence: %w", err)
	}
	return nil
}

// settleLocked ends a user's write: answers the waiters once the row is as they want it (a join
// is answered only when the row is committed: the hand-over rule), or queues the next write if
// the wish changed meanwhile (a join that came while a leave's delete ran waits for the insert).
func (p *Presence) settleLocked(id string, u *presentUser, err error) {
	u.busy = false
	if err != nil {
		for _, w := range u.waiters {
			w <- err
		}
		u.waiters = nil
		return // the failed joins' Leave calls settle the count
	}
	if (u.sockets > 0) != u.stored {
		p.scheduleLocked(id, u)
		return
	}
	for _, w := range u.waiters {
		w <- nil
	}
	u.waiters = nil
	if u.sockets == 0 {
		delete(p.users, id)
	}
}

// unregister deletes the registration (and by cascade the presence): routing stops at once
// instead of after the lease.
func (p *Presence) unregister(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p.registered.Store(false)
	if _, err := p.cfg.Pool.Exec(ctx, `DELETE FROM realtime_instances WHERE id = $1`, p.cfg.InstanceID); err != nil {
		p.cfg.Logger.Warn("presence: unregister", slog.Any("err", err))
	}
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
