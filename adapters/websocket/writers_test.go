package websocket

import (
	"slices"
	"testing"
)

// TestRunQueueServesFewRecipientsFirst: the sockets of a frame with few recipients are written
// ahead of those a big fan-out queued before them (another author's post does not wait behind a
// celebrity's thousands of sockets; BenchmarkHubDeliverBehindAFanout measures it), in order among
// themselves, and the rest keep their order.
func TestRunQueueServesFewRecipientsFirst(t *testing.T) {
	p := writers{max: 1, running: 1, wake: make(chan struct{}, 1)} // no worker starts: the test pops
	fan := []*conn{{user: "f1"}, {user: "f2"}, {user: "f3"}}
	few := []*conn{{user: "a"}, {user: "b"}}
	p.add(false, fan)
	p.add(true, few)
	var got []string
	for c := p.pop(); c != nil; c = p.pop() {
		got = append(got, c.user)
	}
	if want := []string{"a", "b", "f1", "f2", "f3"}; !slices.Equal(got, want) {
		t.Fatalf("popped %v, want %v", got, want)
	}
}
