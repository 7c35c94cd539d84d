package amqp

import (
	"context"
	"log/slog"
	"testing"

	"github.com/socialnet/social/adapters/amqp/amqptest"
)

// Each lane must be its own broker channel (else the broker routes everything in one process,
// which is what lanes exist to avoid), and a message must go out on its lane's channel.
func TestPublisherOpensOneChannelPerLane(t *testing.T) {
	p, err := NewPublisher(PublisherConfig{Dialer: NewDialer([]string{amqptest.URL()}), Lanes: 3, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// amq.direct always exists and drops messages no queue is bound for.
	if err := p.Send(context.Background(), "amq.direct", []Outgoing{{MessageID: "m", RoutingKey: "nobody", Lane: 2}}).Wait(); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess == nil || len(p.sess.chs) != 3 {
		t.Fatalf("session channels: %+v, want 3", p.sess)
	}
	// Lane 2 published one message, lanes 0 and 1 none: their next sequence numbers differ.
	if got := p.sess.chs[2].GetNextPublishSeqNo(); got != 2 {
		t.Errorf("lane 2 next publish seq %d, want 2", got)
	}
	if got := p.sess.chs[0].GetNextPublishSeqNo(); got != 1 {
		t.Errorf("lane 0 next publish seq %d, want 1", got)
	}
}
