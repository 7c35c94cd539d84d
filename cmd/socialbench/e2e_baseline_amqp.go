package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/domain"
)

// amqpBaseline is raw amqp091-go delivering one message per follower: the naive fan-out that
// sender-selected distribution (one message per ≤1,000 followers) is meant to beat.
type amqpBaseline struct {
	Window     int     `json:"confirm_window"`
	Published  int64   `json:"published"`
	Consumed   int64   `json:"consumed"`
	MsgsPerSec float64 `json:"msgs_per_s"` // consumed per second
}

// sampleFrame is a realistic frame body (~250 bytes).
func sampleFrame() []byte {
	b, _ := json.Marshal(domain.NewFeedFrame(domain.EventPostCreated, domain.PostChanged{
		PostID: uuid.NewString(), AuthorUserID: uuid.NewString(), Text: "socialbench post 123456 at " + time.Now().Format(time.RFC3339Nano),
	}, 123456, time.Now()))
	return b
}

// amqpFollowerBaseline publishes transient frames to one exclusive queue through the default
// exchange with up to window unconfirmed messages in flight (pipelined confirms), while a second
// connection consumes with auto-ack, as realtime does. The rate is messages consumed per second.
func amqpFollowerBaseline(ctx context.Context, cfg e2eConfig) (*amqpBaseline, error) {
	const window = 1000
	pubConn, err := amqp091.Dial(cfg.AMQPURL)
	if err != nil {
		return nil, err
	}
	defer pubConn.Close()
	subConn, err := amqp091.Dial(cfg.AMQPURL)
	if err != nil {
		return nil, err
	}
	defer subConn.Close()
	sub, err := subConn.Channel()
	if err != nil {
		return nil, err
	}
	q, err := sub.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return nil, fmt.Errorf("declare queue: %w", err)
	}
	deliveries, err := sub.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	pub, err := pubConn.Channel()
	if err != nil {
		return nil, err
	}
	if err := pub.Confirm(false); err != nil {
		return nil, err
	}
	confirms := pub.NotifyPublish(make(chan amqp091.Confirmation, window))

	var consumed atomic.Int64
	var lastAt atomic.Int64
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for range deliveries {
			consumed.Add(1)
			lastAt.Store(time.Now().UnixNano())
		}
	}()

	body := sampleFrame()
	msg := amqp091.Publishing{ContentType: "application/json", DeliveryMode: amqp091.Transient, Body: body}
	start := time.Now()
	end := start.Add(cfg.BaselineFor)
	var published, confirmed int64
	for time.Now().Before(end) && ctx.Err() == nil {
		for published-confirmed >= window {
			c := <-confirms
			if !c.Ack {
				return nil, fmt.Errorf("broker nacked message %d", c.DeliveryTag)
			}
			confirmed++
		}
		if err := pub.PublishWithContext(ctx, "", q.Name, false, false, msg); err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		published++
	}
	for confirmed < published {
		select {
		case c := <-confirms:
			if !c.Ack {
				return nil, fmt.Errorf("broker nacked message %d", c.DeliveryTag)
			}
			confirmed++
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("%d confirms missing", published-confirmed)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for consumed.Load() < published && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := consumed.Load()
	sub.Close()
	secs := float64(lastAt.Load()-start.UnixNano()) / 1e9
	return &amqpBaseline{Window: window, Published: published, Consumed: got, MsgsPerSec: float64(got) / secs}, nil
}
