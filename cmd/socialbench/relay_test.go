package main

import "testing"

// TestRelaySmoke runs `socialbench relay` tiny, with both publishers, the probe and the baseline:
// every delivery is counted, or it fails.
func TestRelaySmoke(t *testing.T) {
	ctx, sc := smokeSystem(t)
	if err := runRelay(ctx, []string{"--amqp-url", sc.AMQPURL, "--admin-url", sc.AdminURL, "--posts", "20", "--followers", "30",
		"--authors", "2", "--publisher", publisherOurs + "," + publisherWatermill, "--probe", "--baseline-max", "500"}); err != nil {
		t.Fatalf("relay: %v", err)
	}
}

// TestRelayLiveRoundsSmoke runs the live mode twice over: each round's posts and its probe must
// arrive, or it fails.
func TestRelayLiveRoundsSmoke(t *testing.T) {
	ctx, sc := smokeSystem(t)
	if err := runRelay(ctx, []string{"--amqp-url", sc.AMQPURL, "--admin-url", sc.AdminURL, "--posts", "2", "--followers", "300",
		"--bound", "30", "--authors", "1", "--live", "--rounds", "2", "--no-baseline"}); err != nil {
		t.Fatalf("relay: %v", err)
	}
}
