package outbox_test

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/outbox"
)

// TestStatusMatchesKnownState builds 13 real posts and sets their rows to: 4 relayed (one of them
// 5 minutes ago), 2 dead, 7 pending (the oldest committed 90 s ago).
func TestStatusMatchesKnownState(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	author := opsUser(t, db, "Ann")
	opsPosts(t, db, author, 13)
	db.Exec(t, `UPDATE outbox SET status = 'relayed', position = id, relayed_at = now() WHERE id <= 4`)
	db.Exec(t, `UPDATE outbox SET relayed_at = now() - interval '5 minutes' WHERE id = 1`)
	db.Exec(t, `UPDATE outbox SET status = 'dead', attempts = 10, last_error = 'publish: broker said no ' || id WHERE id IN (5, 6)`)
	db.Exec(t, `UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE id = 7`)

	s, err := outbox.ReadStatus(context.Background(), db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pending != 7 || s.Dead != 2 || s.PendingReplays != 0 {
		t.Errorf("pending %d, dead %d, replays %d; want 7, 2, 0", s.Pending, s.Dead, s.PendingReplays)
	}
	if s.OldestPendingAgeSeconds < 89 || s.OldestPendingAgeSeconds > 120 {
		t.Errorf("oldest pending age %.1f s, want about 90", s.OldestPendingAgeSeconds)
	}
	if s.LastRelayedPosition != 4 {
		t.Errorf("last relayed position %d, want 4", s.LastRelayedPosition)
	}
	if s.RelayedLastMinute != 3 || math.Abs(s.RelayRatePerSecond-3.0/60) > 1e-9 {
		t.Errorf("relayed last minute %d at %.3f/s, want 3 at 0.050/s", s.RelayedLastMinute, s.RelayRatePerSecond)
	}
	if len(s.DeadRows) != 2 {
		t.Fatalf("dead rows %+v, want 2", s.DeadRows)
	}
	d := s.DeadRows[0] // newest first
	if d.ID != 6 || d.Author != author || d.Attempts != 10 || d.LastError != "publish: broker said no 6" ||
		d.EventType != "post.created" || d.EventID == "" {
		t.Errorf("newest dead row %+v", d)
	}

	// The JSON names are the documented interface.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"pending":7`, `"oldest_pending_age_seconds":`, `"dead":2`, `"dead_rows":[`,
		`"last_relayed_position":4`, `"relayed_last_minute":3`, `"relay_rate_per_second":0.05`,
		`"id":6`, `"event_id":`, `"author":`, `"attempts":10`, `"last_error":`} {
		if !strings.Contains(string(b), name) {
			t.Errorf("status JSON lacks %s: %s", name, b)
		}
	}
}

func TestStatusOfEmptyOutbox(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s, err := outbox.ReadStatus(context.Background(), db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s)
	want := `{"pending":0,"pending_replays":0,"oldest_pending_age_seconds":0,"dead":0,"dead_rows":[],"last_relayed_position":0,"relayed_last_minute":0,"relay_rate_per_second":0}`
	if string(b) != want {
		t.Errorf("empty status\n got %s\nwant %s", b, want)
	}
}

// TestStatusLeavesReplaysOutOfTheAge: a replay of week-old events must not look like a week of lag.
func TestStatusLeavesReplaysOutOfTheAge(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	opsPosts(t, db, opsUser(t, db, "Bob"), 3)
	opsRelayAll(t, db)
	db.Exec(t, `UPDATE outbox SET status = 'pending', keep_position = true, created_at = now() - interval '7 days' WHERE id = 1`)
	s, err := outbox.ReadStatus(context.Background(), db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pending != 1 || s.PendingReplays != 1 || s.OldestPendingAgeSeconds != 0 || s.LastRelayedPosition != 3 {
		t.Errorf("status %+v; want 1 pending replay, age 0, last position 3", s)
	}
}

func TestStatusCollectorGauges(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	opsPosts(t, db, opsUser(t, db, "Cid"), 10)
	db.Exec(t, `UPDATE outbox SET status = 'dead', attempts = 10 WHERE id IN (1, 2)`)
	db.Exec(t, `UPDATE outbox SET status = 'relayed', position = id, relayed_at = now() WHERE id = 3`)
	db.Exec(t, `UPDATE outbox SET created_at = now() - interval '30 seconds' WHERE id = 4`)

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(outbox.NewStatusCollector(db.Pool, time.Second, nil))
	got := gatherValues(t, reg)
	for name, want := range map[string]float64{
		"social_outbox_pending_rows": 7, "social_outbox_dead_rows": 2, "social_outbox_pending_replay_rows": 0,
		"social_outbox_status_up": 1,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if age := got["social_outbox_oldest_pending_age_seconds"]; age < 29 || age > 60 {
		t.Errorf("social_outbox_oldest_pending_age_seconds = %v, want about 30", age)
	}

	// The gauges move with the table: they are computed on scrape.
	db.Exec(t, `UPDATE outbox SET status = 'relayed', position = id, relayed_at = now() WHERE status = 'pending'`)
	got = gatherValues(t, reg)
	if got["social_outbox_pending_rows"] != 0 || got["social_outbox_oldest_pending_age_seconds"] != 0 {
		t.Errorf("after relay: %v", got)
	}
}

// TestStatusCollectorWithoutDatabase: the scrape still succeeds, says up = 0 and shows no stale
// backlog figures.
func TestStatusCollectorWithoutDatabase(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmpty(t) // no outbox table: every query fails
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(outbox.NewStatusCollector(db.Pool, time.Second, nil))
	got := gatherValues(t, reg)
	if v, ok := got["social_outbox_status_up"]; !ok || v != 0 {
		t.Errorf("social_outbox_status_up = %v (present %v), want 0", v, ok)
	}
	if _, ok := got["social_outbox_pending_rows"]; ok {
		t.Errorf("pending gauge exposed without a database: %v", got)
	}
}

func gatherValues(t testing.TB, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	return out
}
