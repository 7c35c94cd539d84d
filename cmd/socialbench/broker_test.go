package main

import (
	"strings"
	"testing"
	"time"
)

// TestBrokerSmoke runs `socialbench broker` briefly against the test broker: every shape's
// messages are all confirmed and consumed, and the table names each shape.
func TestBrokerSmoke(t *testing.T) {
	ctx, sc := smokeSystem(t)
	res, err := runBrokerBench(ctx, brokerConfig{AMQPURL: sc.AMQPURL, Followers: 150, Instances: 2, Rate: 50,
		For: 300 * time.Millisecond, Runs: 1, Shapes: brokerShapes}, nil)
	if err != nil {
		t.Fatalf("broker bench: %v", err)
	}
	perPost := map[string]int{"cc": 1, "instance": 2, "header": 1, "bare": 1}
	if len(res.Trials) != len(brokerShapes) {
		t.Fatalf("%d trials, want %d", len(res.Trials), len(brokerShapes))
	}
	for _, tr := range res.Trials {
		if tr.Posts == 0 || tr.Messages != perPost[tr.Shape]*tr.Posts || tr.Consumed != int64(tr.Messages) {
			t.Errorf("%s: %d posts, %d messages, %d consumed", tr.Shape, tr.Posts, tr.Messages, tr.Consumed)
		}
	}
	md := res.markdown()
	for _, s := range brokerShapes {
		if !strings.Contains(md, "| "+s+" |") {
			t.Errorf("table has no row for %s:\n%s", s, md)
		}
	}
	if !strings.Contains(md, "instance ÷ cc: ") {
		t.Errorf("no instance ÷ cc ratio:\n%s", md)
	}
	if _, err := runBrokerBench(ctx, brokerConfig{AMQPURL: sc.AMQPURL, Followers: 150, Instances: 2, Rate: 50, Runs: 1, Shapes: []string{"fanout"}}, nil); err == nil {
		t.Error("an unknown shape was accepted")
	}
}
