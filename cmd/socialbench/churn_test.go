package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/amqp/amqptest"
)

// TestChurnSmoke runs `socialbench churn` once in a tiny configuration — one realtime, a few
// client loops, the raw binding baseline — to prove it works: operations on both sides, presence
// exact at the end. Nothing about speed is asserted.
func TestChurnSmoke(t *testing.T) {
	ctx, sys := smokeSystem(t)
	c := churnConfig{Conns: 6, For: 500 * time.Millisecond, Runs: 1, Settle: 10 * time.Second, benchSystem: sys}
	runs, err := runChurnBench(ctx, c)
	if err != nil {
		t.Fatalf("churn: %v", err)
	}
	r := runs[0]
	if r.Ours.Ops == 0 || r.Baseline.Ops == 0 || r.Baseline.Errors != 0 {
		t.Errorf("ours %+v, baseline %+v", r.Ours, r.Baseline)
	}
	if r.Ours.Errors != 0 { // the server's to fix, not the bench's: reported, not failed
		t.Logf("%d client errors, the first: %s", r.Ours.Errors, r.Ours.FirstErr)
	}
	if !r.PresenceExact || r.Connected != 3 || r.PresenceRows != 3 {
		t.Errorf("presence: %d rows for %d connected users, exact %v", r.PresenceRows, r.Connected, r.PresenceExact)
	}
	var out bytes.Buffer
	printChurn(&out, c, runs)
	if !strings.Contains(out.String(), "ratio ours ÷ baseline") {
		t.Errorf("no ratio in:\n%s", out.String())
	}
}

// smokeSystem skips under -short, runs t in parallel and gives the smoke tests of churn and
// failover a deadline and the test services.
func smokeSystem(t *testing.T) (context.Context, benchSystem) {
	if testing.Short() {
		t.Skip("starts the real system")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx, benchSystem{AMQPURL: amqptest.URL(), AdminURL: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", Quiet: true}
}
