package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/amqp/amqptest"
)

// TestFanoutSmoke runs one trial of `socialbench fanout` for ours in a tiny configuration — the
// memory reading, the rate phase with its broker probe, the burst through the api and the frames
// handed over at once (the realtime process stopped and continued) — to prove it works. Nothing
// about speed is asserted. Ours both ways: one frame per message, and ?batch=lines (a message per
// write round, one frame per line). (The Centrifugo side needs a binary this repository does not
// hold.)
func TestFanoutSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real system")
	}
	t.Parallel()
	for _, sys := range []string{"social", "social-lines"} {
		t.Run(sys, func(t *testing.T) {
			t.Parallel()
			fanoutSmoke(t, sys)
		})
	}
}

func fanoutSmoke(t *testing.T, sys string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr, err := runFanoutTrial(ctx, fanoutConfig{
		Runs: 1, Subscribers: 20, Idle: 40, Rate: 20, RateFor: time.Second, StepFor: time.Second,
		Burst: 30, Publishers: 4, Direct: 30, MaxP99: 250 * time.Millisecond, Quiet: true, Stages: true,
		AMQPURL: amqptest.URL(), AdminURL: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
	}, sys, 1)
	if err != nil {
		t.Fatalf("fanout: %v", err)
	}
	if tr.Memory == nil || tr.Memory.Sockets != 40 {
		t.Errorf("memory reading %+v, want 40 sockets", tr.Memory)
	}
	for name, ph := range map[string]*phaseResult{"rate": tr.AtRate, "burst": tr.Burst, "direct": tr.Direct} {
		if ph == nil || ph.Frames == 0 || ph.Missing != 0 || ph.Duplicates != 0 {
			t.Errorf("%s phase: %+v", name, ph)
		}
	}
	if tr.Direct != nil && tr.Direct.Frames != 30*20 {
		t.Errorf("handed over at once: %d frames, want %d", tr.Direct.Frames, 30*20)
	}
	if tr.Stages == nil || tr.Stages.Posts == 0 {
		t.Errorf("no path stages: %+v", tr.Stages)
	}
	if tr.SocketsCut != 0 {
		t.Errorf("%d sockets cut", tr.SocketsCut)
	}
	md := (&fanoutReport{Config: fanoutConfig{Runs: 1, Subscribers: 20, Idle: 40, Rate: 20, Burst: 30, Publishers: 4, Direct: 30}, Trials: []fanoutTrial{*tr}}).markdown([]string{sys})
	if len(md) < 500 {
		t.Errorf("summary too short:\n%s", md)
	}
	// The rate phase's cores by process: a number, not a dash, for the realtime and the api.
	for _, r := range []string{"cores at 20 posts/s: realtime", "cores at 20 posts/s: api"} {
		if i := strings.Index(md, r); i < 0 || strings.HasPrefix(strings.SplitN(md[i:], "| ", 2)[1], "–") {
			t.Errorf("no figure for %q in:\n%s", r, md)
		}
	}
}
