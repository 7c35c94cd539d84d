package main

import (
	"strings"
	"testing"
	"time"
)

// TestFanoutSmoke runs one trial of `socialbench fanout` for ours in a tiny configuration — the
// rate phase, find-max and half of it — both ways: one frame per message, and ?batch=lines. (The
// Centrifugo side needs a binary this repository does not hold.)
func TestFanoutSmoke(t *testing.T) {
	for _, sys := range []string{sysSocial, sysSocialLines} {
		t.Run(sys, func(t *testing.T) {
			ctx, sc := smokeSystem(t)
			fc := fanoutConfig{Runs: 1, Subscribers: 20, Rate: 20, RateFor: time.Second, StepFor: 300 * time.Millisecond,
				MaxP99: 10 * time.Second, FindMax: true, Quiet: true, System: sc}
			tr, err := runFanoutTrial(ctx, fc, sys, 1)
			if err != nil {
				t.Fatalf("fanout: %v", err)
			}
			for name, ph := range map[string]*phaseResult{"rate": tr.AtRate, "half max": tr.AtHalfMax} {
				if ph == nil || ph.Frames == 0 || ph.Missing != 0 || ph.Duplicates != 0 {
					t.Errorf("%s phase: %+v", name, ph)
				}
			}
			if tr.SocketsCut != 0 || tr.MaxRate <= 0 {
				t.Errorf("%d sockets cut, highest rate %.0f", tr.SocketsCut, tr.MaxRate)
			}
			// The relay's phases over the rate phase, read from the dispatcher's /metrics.
			for _, name := range phaseOrder {
				if tr.RelayPhasesMs[name] <= 0 {
					t.Errorf("relay phase means %v: no %s", tr.RelayPhasesMs, name)
				}
			}
			md := (&fanoutReport{Config: fc, Trials: []fanoutTrial{*tr}}).markdown([]string{sys})
			// The rate phase's cores by process: a number, not a dash, for the realtime and the api.
			for _, r := range []string{"cores at 20 posts/s: realtime", "cores at 20 posts/s: api"} {
				if i := strings.Index(md, r); i < 0 || strings.HasPrefix(strings.SplitN(md[i:], "| ", 2)[1], "–") {
					t.Errorf("no figure for %q in:\n%s", r, md)
				}
			}
		})
	}
}

// The ratio rows divide ours by Centrifugo's of the same run, and only where both measured it.
func TestFanoutRatiosPairRuns(t *testing.T) {
	trial := func(sys string, run int, max float64) fanoutTrial {
		return fanoutTrial{System: sys, Run: run, MaxRate: max}
	}
	rep := &fanoutReport{Config: fanoutConfig{Runs: 3, FindMax: true, MaxP99: 250 * time.Millisecond}, Trials: []fanoutTrial{
		trial(sysSocial, 1, 100), trial(sysCentrifugo, 1, 50),
		trial(sysCentrifugo, 2, 400), trial(sysSocial, 2, 100),
		trial(sysSocial, 3, 90), // Centrifugo's run 3 failed
	}}
	md := rep.markdown([]string{sysSocial, sysCentrifugo})
	want := "| highest rate ÷ Centrifugo's, run by run | 1.12 (0.25–2.00) | – |"
	if !strings.Contains(md, want) {
		t.Errorf("want the row %q in:\n%s", want, md)
	}
	if md := rep.markdown([]string{sysSocial}); strings.Contains(md, "÷ Centrifugo") {
		t.Errorf("a ratio row without Centrifugo:\n%s", md)
	}
}
