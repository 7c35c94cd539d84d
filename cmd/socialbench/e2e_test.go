package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/amqp/amqptest"
)

// TestE2ESmoke runs the whole benchmark once in a tiny configuration — build, start the split
// system with two realtime instances on a fresh database and exchange, seed, baselines, sockets,
// capacity and open-loop phases, report — to prove it works. It asserts nothing about speed.
func TestE2ESmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real system")
	}
	t.Parallel()
	out := t.TempDir()
	cfg, err := parseE2EFlags([]string{
		"--users", "60", "--followers", "3", "--celebrity", "25", "--celebrity-every", "4",
		"--connected", "30", "--tabs", "2", "--realtime", "2",
		"--rate", "20", "--duration", "2s", "--warmup", "0", "--capacity-for", "1s", "--baseline-for", "300ms",
		"--straggle", "20s", "--out", out, "--quiet", "--amqp-url", amqptest.URL(),
	}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := runE2EWith(ctx, cfg)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	if err := rep.write(out); err != nil {
		t.Fatal(err)
	}
	if rep.Main == nil || rep.Main.Accepted == 0 || rep.Main.Frames == 0 {
		t.Fatalf("load phase accepted no posts or received no frames: %+v", rep.Main)
	}
	// Every 4th post is the celebrity's: the split must account for every frame.
	if m := rep.Main; m.E2ECelebrity.N == 0 || m.E2EOthers.N == 0 || m.E2ECelebrity.N+m.E2EOthers.N != m.Frames {
		t.Errorf("latency by author: %d celebrity + %d other frames, %d received", m.E2ECelebrity.N, m.E2EOthers.N, m.Frames)
	}
	for _, ph := range rep.Phases {
		if ph.Missing != 0 || ph.Duplicates != 0 || ph.Unexpected != 0 {
			t.Errorf("phase %s: %d missing, %d duplicate, %d unexpected frames", ph.Name, ph.Missing, ph.Duplicates, ph.Unexpected)
		}
	}
	if rep.Baselines == nil || rep.Baselines.SQL == nil || rep.Baselines.AMQP == nil || rep.Baselines.WS == nil {
		t.Errorf("baselines missing: %+v", rep.Baselines)
	}
	var back e2eReport
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	for _, f := range []string{"report.md", "latency.svg"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}
