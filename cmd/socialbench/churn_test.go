package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestChurnSmoke runs `socialbench churn` once in a tiny configuration — one realtime, a few
// client loops, the raw binding baseline: operations on both sides, presence exact at the end.
func TestChurnSmoke(t *testing.T) {
	ctx, sc := smokeSystem(t)
	c := churnConfig{Conns: 6, For: 500 * time.Millisecond, Runs: 1, Settle: 10 * time.Second, System: sc, Quiet: true}
	runs, err := runChurnBench(ctx, c)
	if err != nil {
		t.Fatalf("churn: %v", err)
	}
	r := runs[0]
	if r.Ours.Ops == 0 || r.Baseline.Ops == 0 || r.Baseline.Errors != 0 || r.CPUPerK <= 0 {
		t.Errorf("ours %+v, baseline %+v, realtime CPU-s per 1,000 %v", r.Ours, r.Baseline, r.CPUPerK)
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
