package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/cmd/socialbench/internal/bench"
	"github.com/socialnet/social/domain"
)

// runBroker measures what RabbitMQ itself spends per post, with no code of ours on the path: raw
// amqp091-go publishes one post's messages at a steady rate (pipelined confirms, as the relay),
// exclusive queues consume them (auto-ack, as realtime), and the broker's CPU comes from /proc.
// Each shape is a way of addressing the same online followers:
//
//	cc        the former design, the baseline: one queue bound with every follower's id, one
//	          message per post with routing key = a follower and a CC header naming the others
//	instance  design.md §3: --instances queues bound with one key each (the instance's id), one
//	          message per instance per post, routing key = the instance id, the body a feed
//	          message (domain.AppendDelivery) with the frame and that instance's followers' ids
//	header    one routing key, the followers in a header the broker does not route on
//	bare      one routing key, the frame alone: the broker's cost per message, whatever it names
//
// The shapes alternate within each run, so a noisy machine moves them alike.
//
//	go run ./cmd/socialbench broker --runs 3
func runBroker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	cfg := brokerConfig{}
	fs.StringVar(&cfg.AMQPURL, "amqp-url", bench.DefaultAMQPURL, "RabbitMQ, on this machine (its CPU is read from /proc)")
	fs.IntVar(&cfg.Followers, "followers", 1000, "online followers per post (≤ 1,000: one CC message per post)")
	fs.IntVar(&cfg.Instances, "instances", 2, "realtime instances the followers are spread over (shape instance)")
	fs.Float64Var(&cfg.Rate, "rate", 101, "posts/s")
	fs.DurationVar(&cfg.For, "for", 15*time.Second, "length of each shape's run")
	fs.IntVar(&cfg.Runs, "runs", 3, "runs of every shape, alternating")
	shapes := fs.String("shapes", strings.Join(brokerShapes, ","), "comma-separated: "+strings.Join(brokerShapes, ", "))
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Shapes = strings.Split(*shapes, ",")
	res, err := runBrokerBench(ctx, cfg, func(r brokerTrial) {
		fmt.Printf("broker: run %d %-6s %6.1f posts/s  broker %.3f cores, %.2f ms CPU per post\n",
			r.Run, r.Shape, r.PostsPerSec, r.Cores, r.MsPerPost)
	})
	if err != nil {
		return err
	}
	fmt.Print(res.markdown())
	return nil
}

var brokerShapes = []string{"cc", "instance", "header", "bare"}

// brokerGoal is the bound on the instance shape's broker CPU per post, as a fraction of cc's.
const brokerGoal = 0.3

type brokerConfig struct {
	AMQPURL   string
	Followers int
	Instances int
	Rate      float64
	For       time.Duration
	Runs      int
	Shapes    []string
}

type brokerTrial struct {
	Run         int
	Shape       string
	Posts       int
	Messages    int
	Consumed    int64
	PostsPerSec float64
	Cores       float64 // the broker's CPU over the run (until the last message was consumed)
	MsPerPost   float64
}

type brokerResult struct {
	Config brokerConfig
	Trials []brokerTrial
}

func runBrokerBench(ctx context.Context, cfg brokerConfig, progress func(brokerTrial)) (*brokerResult, error) {
	for _, s := range cfg.Shapes {
		if !slices.Contains(brokerShapes, s) {
			return nil, fmt.Errorf("--shapes: unknown shape %q", s)
		}
	}
	if cfg.Followers < 2 || cfg.Followers > 1000 {
		return nil, errors.New("--followers must be 2..1000")
	}
	if cfg.Instances < 1 || cfg.Instances > cfg.Followers {
		return nil, errors.New("--instances must be 1..--followers")
	}
	if cfg.Rate <= 0 || cfg.Runs < 1 {
		return nil, errors.New("--rate and --runs must be positive")
	}
	pid := bench.BrokerPID(cfg.AMQPURL)
	if pid == 0 {
		return nil, errors.New("no process on this machine listens on --amqp-url's port: the broker's CPU cannot be read")
	}
	res := &brokerResult{Config: cfg}
	for run := 1; run <= cfg.Runs; run++ {
		for _, shape := range cfg.Shapes {
			t, err := brokerTrialRun(ctx, cfg, pid, shape)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", shape, err)
			}
			t.Run = run
			res.Trials = append(res.Trials, *t)
			if progress != nil {
				progress(*t)
			}
		}
	}
	return res, nil
}

// brokerTopology is a fresh auto-delete exchange and exclusive queues: for shape instance one per
// instance, bound with its id; for the others one, bound with every follower's id.
type brokerTopology struct {
	conn      *amqp091.Connection
	exchange  string
	ids       []string
	instances [][]string // instance: the followers of each instance (ids split in turn)
	instIDs   []string
}

func newBrokerTopology(url, shape string, followers, instances int) (*brokerTopology, <-chan amqp091.Delivery, error) {
	conn, err := amqp091.Dial(url)
	if err != nil {
		return nil, nil, err
	}
	t := &brokerTopology{conn: conn, exchange: "socialbench.broker." + uuid.NewString()[:8]}
	for range followers {
		t.ids = append(t.ids, uuid.NewString())
	}
	bindings := [][]string{t.ids} // per queue, its binding keys
	if shape == "instance" {
		t.instances = make([][]string, instances)
		for i, id := range t.ids {
			t.instances[i%instances] = append(t.instances[i%instances], id)
		}
		bindings = nil
		for range instances {
			id := "rt-" + uuid.NewString()
			t.instIDs = append(t.instIDs, id)
			bindings = append(bindings, []string{id})
		}
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.ExchangeDeclare(t.exchange, "direct", false, true, false, false, nil)
	}
	deliveries := make(chan amqp091.Delivery)
	var queues []<-chan amqp091.Delivery
	for _, keys := range bindings {
		var q amqp091.Queue
		if err == nil {
			q, err = ch.QueueDeclare("", false, true, true, false, nil)
		}
		for _, key := range keys {
			if err != nil {
				break
			}
			err = ch.QueueBind(q.Name, key, t.exchange, false, nil)
		}
		var ds <-chan amqp091.Delivery
		if err == nil {
			ds, err = ch.Consume(q.Name, "", true, true, false, false, nil)
		}
		queues = append(queues, ds)
	}
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("topology: %w", err)
	}
	var wg sync.WaitGroup
	for _, ds := range queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range ds {
				deliveries <- d
			}
		}()
	}
	go func() { wg.Wait(); close(deliveries) }()
	return t, deliveries, nil
}

// brokerMessage is one message of a post and its routing key.
type brokerMessage struct {
	key string
	pub amqp091.Publishing
}

// messages is one post's messages in shape.
func (t *brokerTopology) messages(shape string, frame []byte) []brokerMessage {
	msg := func(key string, headers amqp091.Table, body []byte) brokerMessage {
		return brokerMessage{key, amqp091.Publishing{Headers: headers, ContentType: "application/json",
			DeliveryMode: amqp091.Transient, Body: body}}
	}
	others := func(ids []string) []interface{} {
		l := make([]interface{}, len(ids))
		for i, id := range ids {
			l[i] = id
		}
		return l
	}
	ids := t.ids
	switch shape {
	case "instance":
		var out []brokerMessage
		for i, to := range t.instances {
			body := domain.AppendDelivery(domain.NewDeliveries(nil), frame, to)
			out = append(out, msg(t.instIDs[i], nil, body))
		}
		return out
	case "header":
		return []brokerMessage{msg(ids[0], amqp091.Table{"x-recipients": others(ids[1:])}, frame)}
	case "bare":
		return []brokerMessage{msg(ids[0], nil, frame)}
	default: // cc: RabbitMQ's sender-selected distribution header
		return []brokerMessage{msg(ids[0], amqp091.Table{"CC": others(ids[1:])}, frame)}
	}
}

// brokerTrialRun publishes one shape at cfg.Rate for cfg.For, waits until every message was
// confirmed and consumed and reads the broker's CPU over that time.
func brokerTrialRun(ctx context.Context, cfg brokerConfig, pid int, shape string) (*brokerTrial, error) {
	top, deliveries, err := newBrokerTopology(cfg.AMQPURL, shape, cfg.Followers, cfg.Instances)
	if err != nil {
		return nil, err
	}
	defer top.conn.Close()
	var consumed, acked, nacked atomic.Int64
	go func() {
		for range deliveries {
			consumed.Add(1)
		}
	}()
	ch, err := top.conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		return nil, err
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 1024))
	go func() { // pipelined confirms: counted, never waited for one by one
		for c := range confirms {
			if c.Ack {
				acked.Add(1)
			} else {
				nacked.Add(1)
			}
		}
	}()
	frame, _ := json.Marshal(benchFrame(123456))
	msgs := top.messages(shape, frame)

	before, _ := bench.ReadProc(pid)
	start := time.Now()
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer tick.Stop()
	posts, published := 0, int64(0)
	for time.Since(start) < cfg.For {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		for _, m := range msgs {
			if err := ch.PublishWithContext(ctx, top.exchange, m.key, false, false, m.pub); err != nil {
				return nil, fmt.Errorf("publish: %w", err)
			}
			published++
		}
		posts++
	}
	elapsed := time.Since(start)
	deadline := time.Now().Add(30 * time.Second)
	for acked.Load()+nacked.Load() < published || consumed.Load() < published {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d confirmed, %d consumed after 30 s", acked.Load(), published, consumed.Load())
		}
		time.Sleep(time.Millisecond) // polling the counters, with the deadline above
	}
	if n := nacked.Load(); n > 0 {
		return nil, fmt.Errorf("broker nacked %d messages", n)
	}
	// The run ends with its last delivery; the broker's CPU is taken over the same time.
	busy := time.Since(start)
	after, ok := bench.ReadProc(pid)
	if !ok {
		return nil, errors.New("the broker's process went away")
	}
	cpu := after.CPU - before.CPU
	_ = ch.Close()
	return &brokerTrial{Shape: shape, Posts: posts, Messages: int(published), Consumed: consumed.Load(),
		PostsPerSec: float64(posts) / elapsed.Seconds(), Cores: cpu / busy.Seconds(), MsPerPost: cpu * 1e3 / float64(posts)}, nil
}

func (r *brokerResult) markdown() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "\n### socialbench broker: RabbitMQ's own CPU per post, %d followers online (instance: on %d instances), %.0f posts/s\n\n",
		c.Followers, c.Instances, c.Rate)
	fmt.Fprintf(&b, "Raw amqp091-go, no code of ours; %d runs per shape, alternating; median (min–max).\n\n", c.Runs)
	b.WriteString("| shape | messages per post | broker cores | broker CPU ms per post | ÷ cc |\n|---|---|---|---|---|\n")
	byShape := func(shape string, get func(brokerTrial) float64) []float64 {
		var v []float64
		for _, t := range r.Trials {
			if t.Shape == shape {
				v = append(v, get(t))
			}
		}
		return v
	}
	ms := func(t brokerTrial) float64 { return t.MsPerPost }
	ccMs := byShape("cc", ms)
	ratios := map[string]string{}
	for _, s := range c.Shapes {
		perPost := byShape(s, func(t brokerTrial) float64 { return float64(t.Messages) / float64(t.Posts) })[0]
		ratio := "–"
		if vals := byShape(s, ms); len(ccMs) == len(vals) && s != "cc" {
			rs := make([]float64, len(vals))
			for i := range vals {
				rs[i] = vals[i] / ccMs[i] // paired: the same run
			}
			ratio = bench.Spread(rs, "%.2f")
			ratios[s] = ratio
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s |\n", s, perPost,
			bench.Spread(byShape(s, func(t brokerTrial) float64 { return t.Cores }), "%.3f"), bench.Spread(byShape(s, ms), "%.2f"), ratio)
	}
	if r, ok := ratios["instance"]; ok {
		fmt.Fprintf(&b, "\ninstance ÷ cc: %s (goal ≤ %.1f)\n", r, brokerGoal)
	}
	return b.String()
}
