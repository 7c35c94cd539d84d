package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestFailoverSmoke runs `socialbench failover` with a few sockets and two cuts: every follower
// gets the post made during the outage, no socket is closed, a probe frame arrives.
func TestFailoverSmoke(t *testing.T) {
	ctx, sc := smokeSystem(t)
	c := failoverConfig{Users: 30, Runs: 2, ProbeEvery: 50 * time.Millisecond, Within: 30 * time.Second, System: sc, Quiet: true}
	runs, err := runFailoverBench(ctx, c)
	if err != nil {
		t.Fatalf("failover: %v", err)
	}
	for i, r := range runs {
		if r.Closed != 0 || r.Missing != 0 || r.Duplicates != 0 || r.FirstProbe <= 0 || r.AllPost < r.FirstPost {
			t.Errorf("run %d: %+v", i+1, r)
		}
	}
	var out bytes.Buffer
	printFailover(&out, c, runs)
	if !strings.Contains(out.String(), "sockets closed by the server") {
		t.Errorf("no report:\n%s", out.String())
	}
}
