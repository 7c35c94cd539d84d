package outbox

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// presenceView is the leader's copy of presence (design.md §3): the realtime instances that hold
// each online user. route reads an author's followers from PostgreSQL and looks them up here,
// instead of probing the presence table once per follower.
//
// Why routing from the copy is as exact as reading the table: each presence row carries the
// transaction that wrote it (migrations/0014), and the copy remembers the snapshot it was last
// brought up to date in. A catch-up reads every user with a row written by a transaction that
// snapshot did not see (begun after it, or in flight in it and committed since), replaces those
// users' instances with their rows now, and moves the snapshot on. route runs the catch-up in its
// round trip, after the claim committed, so the copy holds every presence row visible in a
// snapshot taken after the batch's positions committed: what reading the table then would return,
// plus rows deleted since. Failure mode guarded: a catch-up run before the claim's commit misses
// a user whose presence committed in between, and so does the resume that follows it
// (TestHandOverRaceLosesNoFrame).
//
// This rests on presence rows being inserted and deleted, never updated, each insert taking tx's
// default (adapters/postgres/presence.go is the only writer): an updated row would keep the tx of
// its insert and its change would go unseen.
//
// A deletion alone is not seen by a catch-up: the user who left stays in the copy (until their
// next connect, or the next full load) and only costs a frame to an instance that drops it. A
// full load replaces the copy once the catch-ups brought as many users as it holds, so that
// such users stay a bounded share of it, and at least every presenceReload. Leases are not copied:
// route reads the live instances in its round trip.
type presenceView struct {
	users    map[[16]byte]*onlineUser
	snapshot string // pg_snapshot's text form: the copy is up to date in it; "" before the first load
	loaded   time.Time
	caught   int // users the catch-ups brought since the last full load
	size     int // users at the last full load
	scans    int // reads so far (onlineUser.scan)
	// names holds each instance id once: every user on an instance shares its string.
	names map[string]string
}

// onlineUser is a user in the presence copy.
type onlineUser struct {
	id        string   // as the feed message names recipients
	instances []string // the instances that hold a socket of the user
	scan      int      // the read (presenceView.scans) that last set instances
}

// presenceReload bounds how long a user who left stays in the copy; presenceReloadRows spares a
// small copy a full load after every few connects.
const (
	presenceReload     = time.Minute
	presenceReloadRows = 1000
)

// loadPresenceSQL reads all of presence and the snapshot it was read in.
const loadPresenceSQL = `
SELECT s.snap::text, p.user_id, p.instance_id
FROM (SELECT pg_current_snapshot() AS snap) s
LEFT JOIN presence p ON true`

// catchUpPresenceSQL reads, with the snapshot it was read in, every presence row of the users
// who have a row written by a transaction that the snapshot $1 did not see: one at or above its
// xmax, or one in flight then (its xip list). Both are index conditions on tx, so the cost is the
// rows written since, even while a long transaction holds the snapshot's xmin back. The LATERALs
// with OFFSET 0 keep an index lookup per transaction in flight and per user whatever the plan (a
// hash join read all of presence). UNION ALL, not UNION: a user may come more than once, and
// scan takes their instances once; a UNION's hash table is sized for the planner's guess at
// pg_snapshot_xip's rows, far too big for a few rows on every batch.
const catchUpPresenceSQL = `
SELECT s.snap::text, c.user_id, p.instance_id
FROM (SELECT pg_current_snapshot() AS snap) s
LEFT JOIN (
    SELECT user_id FROM presence WHERE tx >= pg_snapshot_xmax($1::text::pg_snapshot)
    UNION ALL
    SELECT p.user_id FROM pg_snapshot_xip($1::text::pg_snapshot) AS x(tx)
    CROSS JOIN LATERAL (SELECT user_id FROM presence WHERE tx = x.tx OFFSET 0) p
) c ON true
LEFT JOIN LATERAL (SELECT instance_id FROM presence WHERE user_id = c.user_id OFFSET 0) p ON true`

// liveInstancesSQL reads the instances whose lease is live: presence of the others counts for
// nothing.
const liveInstancesSQL = `SELECT id FROM realtime_instances WHERE lease_until > now()`

// due says a full load should replace the copy before the next route.
func (v *presenceView) due() bool {
	return v.snapshot == "" || v.caught >= max(v.size, presenceReloadRows) ||
		time.Since(v.loaded) >= presenceReload
}

// load replaces the copy with all of presence.
func (v *presenceView) load(ctx context.Context, conn *pgx.Conn) error {
	next := presenceView{users: make(map[[16]byte]*onlineUser, v.size), loaded: time.Now(),
		scans: v.scans + 1, names: map[string]string{}}
	rows, err := conn.Query(ctx, loadPresenceSQL)
	if err != nil {
		return fmt.Errorf("load presence: %w", err)
	}
	if next.snapshot, _, err = next.scan(rows); err != nil {
		return fmt.Errorf("load presence: %w", err)
	}
	next.size = len(next.users)
	*v = next
	return nil
}

// queueCatchUp adds the catch-up to a route's round trip.
func (v *presenceView) queueCatchUp(b *pgx.Batch) {
	b.Queue(catchUpPresenceSQL, v.snapshot).Query(func(rows pgx.Rows) error {
		v.scans++
		snap, n, err := v.scan(rows)
		if err != nil {
			return fmt.Errorf("catch up with presence: %w", err)
		}
		v.snapshot = snap
		v.caught += n
		return nil
	})
}

// online estimates how many users are online, for route's choice of side.
func (v *presenceView) online() int { return len(v.users) }

// lookUp returns the user if the copy has them.
func (v *presenceView) lookUp(user [16]byte) *onlineUser { return v.users[user] }

// on returns the instances among live that hold u.
func (u *onlineUser) on(live map[string]bool) []string {
	var out []string
	for _, inst := range u.instances {
		if live[inst] {
			out = append(out, inst)
		}
	}
	return out
}

// scan reads presence rows into the copy: each user read gets exactly the instances read for
// them (rows of one user replace what the copy had; v.scans tells this read's rows from earlier
// reads'). It returns the snapshot they were read in and how many users it read.
func (v *presenceView) scan(rows pgx.Rows) (snap string, n int, err error) {
	defer rows.Close()
	var user pgtype.UUID
	var inst pgtype.Text
	for rows.Next() {
		if err := rows.Scan(&snap, &user, &inst); err != nil {
			return "", 0, err
		}
		if !user.Valid {
			continue // the LEFT JOIN's row when no presence row matched (then inst is NULL too)
		}
		u := v.users[user.Bytes]
		if u == nil {
			u = &onlineUser{id: uuid.UUID(user.Bytes).String()}
			v.users[user.Bytes] = u
		}
		if u.scan != v.scans {
			u.scan, u.instances = v.scans, u.instances[:0]
			n++
		}
		name, ok := v.names[inst.String]
		if !ok {
			name = inst.String
			v.names[name] = name
		}
		if !slices.Contains(u.instances, name) {
			u.instances = append(u.instances, name)
		}
	}
	return snap, n, rows.Err()
}
