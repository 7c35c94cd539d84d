package amqp_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/amqp/amqptest"
)

func TestPublisherConnectReadsTheBrokerVersion(t *testing.T) {
	conn, err := amqp091.Dial(amqptest.URL())
	if err != nil {
		t.Skipf("broker %s not reachable: %v", amqptest.URL(), err)
	}
	want, _ := conn.Properties["version"].(string)
	product, _ := conn.Properties["product"].(string)
	_ = conn.Close()
	if want == "" {
		t.Fatalf("broker at TEST_AMQP_URL announced no version: %v", conn.Properties)
	}

	pub, err := amqp.NewPublisher(amqp.PublisherConfig{Dialer: amqp.NewDialer([]string{amqptest.URL()}),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	b, err := pub.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != want || b.Product != product {
		t.Errorf("Connect: %+v, want product %q version %q", b, product, want)
	}
	if strings.Contains(b.Addr, "guest:guest") {
		t.Errorf("Connect: address %q not redacted", b.Addr)
	}
	if again, err := pub.Connect(context.Background()); err != nil || again != b {
		t.Errorf("second Connect: %+v, %v; want the same connection's %+v", again, err, b)
	}
}

func TestDialerProbeReportsAnUnreachableBroker(t *testing.T) {
	d := amqp.NewDialer([]string{"amqp://guest:secret@127.0.0.1:1/"})
	_, err := d.Probe(context.Background())
	if err == nil {
		t.Fatal("probe of a closed port succeeded")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("probe error shows the password: %v", err)
	}
}
