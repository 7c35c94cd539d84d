package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/adapters/auth"
	"github.com/socialnet/social/cmd/socialbench/internal/bench"
	"github.com/socialnet/social/domain"
)

const wsUsage = `socialbench ws — idle websocket capacity and delivery latency, ours vs a bare coder/websocket server

Each server runs in a child process (so its RSS holds only the sockets). Same clients for both:
  1. open --conns idle sockets (one user each), RSS delta / socket
  2. close all but --users of them, deliver --frames frames at --rate/s, one user each, round robin;
     latency = frame created_at -> received by the client (p50/p99)
Ours: the realtime hub + adapters/amqp subscriber (one exclusive queue bound with the instance's
id), frames published to RabbitMQ as the dispatcher does (a feed message per frame, routing key =
the instance id). Baseline: a bare coder/websocket server writing frames from an in-process
channel. Raise the open file limit (ulimit -n) if the hard limit is below 2 x conns + slack.

Flags:
`

// runWS is the parent (measuring) process, or with --serve a child server.
func runWS(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ws", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), wsUsage); fs.PrintDefaults() }
	conns := fs.Int("conns", 10000, "idle sockets to open, one user each")
	users := fs.Int("users", 1000, "connected users during the latency phase")
	frames := fs.Int("frames", 5000, "frames to deliver in the latency phase")
	rate := fs.Int("rate", 1000, "frames per second in the latency phase")
	amqpURL := fs.String("amqp-url", bench.DefaultAMQPURL, "RabbitMQ")
	serve := fs.String("serve", "", "internal: run a server (ours|baseline) in this process")
	exchange := fs.String("exchange", "", "internal: the exchange of the child server")
	secret := fs.String("secret", "", "internal: the JWT secret of the child server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *serve != "" {
		return serveWS(ctx, wsServerFlags{kind: *serve, amqpURL: *amqpURL, exchange: *exchange, secret: *secret})
	}
	if *conns < 1 || *users < 1 || *frames < 1 || *rate < 1 {
		return errors.New("--conns, --users, --frames and --rate must be positive")
	}
	bench.RaiseNoFile()
	b := &wsBench{conns: *conns, users: min(*users, *conns), frames: *frames, rate: *rate, amqpURL: *amqpURL,
		exchange: "bench.feed." + uuid.NewString(), secret: uuid.NewString() + uuid.NewString()}
	defer b.deleteExchange()
	var results []wsResult
	for _, kind := range []string{"baseline", "ours"} {
		r, err := b.run(ctx, kind)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		results = append(results, r)
	}
	hop, err := b.brokerHop(ctx)
	if err != nil {
		return fmt.Errorf("broker hop: %w", err)
	}
	printWSResults(os.Stdout, b, results)
	fmt.Printf("\nbroker hop alone (publish -> raw amqp091 consumer, same frames and rate): p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		hop.lat.P50, hop.lat.P99, hop.lat.Max)
	return nil
}

// brokerHop measures what ours adds to the baseline by design: the frames' trip through
// RabbitMQ, to a bare consumer on a queue of its own.
func (b *wsBench) brokerHop(ctx context.Context) (wsResult, error) {
	res := wsResult{kind: "broker"}
	conn, err := amqp091.Dial(b.amqpURL)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return res, err
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return res, err
	}
	if err := ch.QueueBind(q.Name, wsInstanceID, b.exchange, false, nil); err != nil {
		return res, err
	}
	msgs, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return res, err
	}
	lat := &latencies{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range msgs {
			now := time.Now()
			_ = domain.EachDelivery(d.Body, func(frame []byte, _ domain.Recipients) {
				var f domain.FeedFrame
				if json.Unmarshal(frame, &f) == nil {
					lat.add(now.Sub(f.CreatedAt))
				}
			})
			if lat.count() == b.frames {
				return
			}
		}
	}()
	if err := b.publish(ctx, []string{"bench.hop"}); err != nil {
		return res, err
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
	res.lat = lat.summary()
	return res, nil
}

type wsBench struct {
	conns, users, frames, rate int
	amqpURL, exchange, secret  string
}

type wsResult struct {
	kind            string
	conns           int
	rssBefore       int64 // bytes
	rssAfter        int64
	connectDuration time.Duration
	goroutines      int           // added by the open sockets
	closeDuration   time.Duration // closing all but b.users sockets, until the server holds b.users
	lat             bench.Summary // frame created_at -> received by the client
}

func (r wsResult) perConn() float64 { return float64(r.rssAfter-r.rssBefore) / float64(r.conns) }

func (b *wsBench) run(ctx context.Context, kind string) (wsResult, error) {
	res := wsResult{kind: kind, conns: b.conns}
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "ws", "--serve", kind, "--amqp-url", b.amqpURL, "--exchange", b.exchange, "--secret", b.secret)
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return res, fmt.Errorf("child server did not start: %w", err)
	}
	base := "http://" + strings.TrimSpace(line)
	pid := cmd.Process.Pid

	m0, err := stats(base, true)
	if err != nil {
		return res, err
	}
	p0, _ := bench.ReadProc(pid)
	tokens, err := auth.NewTokens(b.secret, time.Hour)
	if err != nil {
		return res, err
	}
	ids := make([]string, b.conns)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	lat := &latencies{}
	clients := make([]*websocket.Conn, b.conns)
	start := time.Now()
	if err := dialAll(ctx, base, ids, tokens, clients, lat); err != nil {
		return res, err
	}
	res.connectDuration = time.Since(start)
	if err := waitConnections(base, b.conns); err != nil {
		return res, err
	}
	m, err := stats(base, true)
	if err != nil {
		return res, err
	}
	p1, _ := bench.ReadProc(pid)
	res.rssBefore, res.rssAfter, res.goroutines = p0.RSS, p1.RSS, m["goroutines"]-m0["goroutines"]
	fmt.Fprintf(os.Stderr, "%s: %d sockets open in %s, RSS %.1f -> %.1f MiB, +%d goroutines\n", kind, b.conns,
		res.connectDuration.Round(time.Millisecond), float64(res.rssBefore)/(1<<20), float64(res.rssAfter)/(1<<20), res.goroutines)

	// Latency phase: keep one socket for each of the first b.users users.
	closeStart := time.Now()
	for _, c := range clients[b.users:] {
		c.Close(websocket.StatusNormalClosure, "")
	}
	if err := waitConnections(base, b.users); err != nil {
		return res, err
	}
	res.closeDuration = time.Since(closeStart)
	targets := ids[:b.users]
	switch kind {
	case "baseline":
		body, _ := json.Marshal(targets)
		resp, err := http.Post(fmt.Sprintf("%s/emit?n=%d&rate=%d", base, b.frames, b.rate), "application/json", strings.NewReader(string(body)))
		if err != nil {
			return res, err
		}
		resp.Body.Close()
	case "ours":
		if err := b.publish(ctx, targets); err != nil {
			return res, err
		}
	}
	deadline := time.Now().Add(time.Duration(b.frames/b.rate+30) * time.Second)
	for lat.count() < b.frames && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	res.lat = lat.summary()
	for _, c := range clients[:b.users] {
		c.CloseNow()
	}
	return res, nil
}

// publish sends the frames to RabbitMQ as the dispatcher does (one feed message per frame naming
// its user, routing key = the instance id), paced.
func (b *wsBench) publish(ctx context.Context, users []string) error {
	conn, err := amqp091.Dial(b.amqpURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	start := time.Now()
	for i := range b.frames {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(b.rate))))
		frame, _ := json.Marshal(benchFrame(int64(i + 1)))
		body := domain.AppendDelivery(domain.NewDeliveries(nil), frame, users[i%len(users):i%len(users)+1])
		err := ch.PublishWithContext(ctx, b.exchange, wsInstanceID, false, false, amqp091.Publishing{
			ContentType: "application/json", DeliveryMode: amqp091.Transient, Body: body})
		if err != nil {
			return err
		}
	}
	return nil
}

func (b *wsBench) deleteExchange() {
	conn, err := amqp091.Dial(b.amqpURL)
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		_ = ch.ExchangeDelete(b.exchange, false, false)
	}
}

// dialAll opens one socket per id, 64 at a time; every socket reads frames into lat.
func dialAll(ctx context.Context, base string, ids []string, tokens *auth.Tokens, clients []*websocket.Conn, lat *latencies) error {
	url := "ws" + strings.TrimPrefix(base, "http") + "/post/feed/posted"
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr error
		errOnce  sync.Once
	)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) || ctx.Err() != nil {
					return
				}
				tok, _ := tokens.Issue(ids[i])
				dctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
				c, _, err := websocket.Dial(dctx, url+"?user="+ids[i],
					&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
				cancel()
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("socket %d: %w", i, err) })
					return
				}
				clients[i] = c
				go lat.read(c)
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// latencies collects frame latencies (ms) from every client.
type latencies struct {
	mu sync.Mutex
	ms []float64
}

func (l *latencies) read(c *websocket.Conn) {
	for {
		_, b, err := c.Read(context.Background())
		if err != nil {
			return
		}
		now := time.Now()
		var f domain.FeedFrame
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		l.add(now.Sub(f.CreatedAt))
	}
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.ms = append(l.ms, float64(d)/1e6)
	l.mu.Unlock()
}

func (l *latencies) count() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.ms) }

func (l *latencies) summary() bench.Summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bench.Summarize(l.ms)
}

func stats(base string, gc bool) (map[string]int, error) {
	u := base + "/stats"
	if gc {
		u += "?gc=1"
	}
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m map[string]int
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

func waitConnections(base string, n int) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, err := stats(base, false)
		if err != nil {
			return err
		}
		if m["connections"] == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server holds %d sockets, want %d", m["connections"], n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func printWSResults(w io.Writer, b *wsBench, rs []wsResult) {
	fmt.Fprintf(w, "\nsocialbench ws: %d idle sockets of as many users; latency with %d users, %d frames at %d/s\n\n", b.conns, b.users, b.frames, b.rate)
	fmt.Fprintf(w, "%-9s %8s %14s %11s %11s %10s %10s %10s %10s %10s\n", "server", "sockets", "RSS/socket", "goroutines", "connect", "close", "p50 ms", "p99 ms", "max ms", "received")
	for _, r := range rs {
		fmt.Fprintf(w, "%-9s %8d %11.1f KiB %11d %11s %10s %10.2f %10.2f %10.2f %6d/%d\n", r.kind, r.conns, r.perConn()/1024, r.goroutines,
			r.connectDuration.Round(time.Millisecond), r.closeDuration.Round(time.Millisecond), r.lat.P50, r.lat.P99, r.lat.Max, r.lat.N, b.frames)
	}
	if len(rs) == 2 && rs[0].perConn() > 0 && rs[0].lat.P50 > 0 {
		base, ours := rs[0], rs[1]
		fmt.Fprintf(w, "\nratio ours/baseline: RSS per socket %.2fx, connect %.2fx, p50 %.2fx, p99 %.2fx\n",
			ours.perConn()/base.perConn(), float64(ours.connectDuration)/float64(base.connectDuration),
			ours.lat.P50/base.lat.P50, ours.lat.P99/base.lat.P99)
	}
	if missing := slices.ContainsFunc(rs, func(r wsResult) bool { return r.lat.N < b.frames }); missing {
		fmt.Fprintln(w, "\nwarning: some frames were not received before the deadline")
	}
}
