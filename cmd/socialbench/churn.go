package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/cmd/socialbench/internal/bench"
)

const churnUsage = `socialbench churn — websocket connects + disconnects per second on one realtime instance

One ` + "`social realtime`" + ` (started here, real PostgreSQL and RabbitMQ) and --conns client loops, one
user each, each doing connect (Bearer JWT) -> close handshake -> connect ... for --for. At the end
the even loops keep their last socket open and the odd ones close it: the instance's presence rows
must then equal the connected users exactly (checked by SQL within --settle).
Baseline, in the same run: the same loops against RabbitMQ alone doing what the old per-user
binding design paid per connect and disconnect (raw amqp091-go): queue.bind pipelined on one
channel (no-wait, the last of a batch of at most 512 waits) and queue.unbind one round trip each on
4 channels. Runs alternate the two; the summary gives the median of --runs runs and their range.

Flags:
`

// churnGoal is the project's goal for ours ÷ the raw binding baseline.
const churnGoal = 3

type churnConfig struct {
	Conns  int
	For    time.Duration
	Runs   int
	Settle time.Duration
	System bench.SystemConfig
	Quiet  bool
}

// churnRun is one run: ours and the baseline.
type churnRun struct {
	Ours     churnOps
	Baseline churnOps
	// Presence at the end of ours: rows of the instance vs users holding a socket.
	PresenceRows, Connected int
	PresenceExact           bool
	Settle                  time.Duration // until the rows matched (or the deadline)
	CPUPerK                 float64       // the realtime's CPU-s per 1,000 connects+disconnects
}

// churnOps counts completed operations (connects and disconnects, or binds and unbinds).
type churnOps struct {
	Ops      int64
	Errors   int64
	FirstErr string
	Elapsed  time.Duration
}

func (o churnOps) perSec() float64 { return float64(o.Ops) / o.Elapsed.Seconds() }

func runChurn(ctx context.Context, args []string) error {
	var c churnConfig
	fs := flag.NewFlagSet("churn", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), churnUsage); fs.PrintDefaults() }
	fs.IntVar(&c.Conns, "conns", 200, "concurrent client loops (one user each)")
	fs.DurationVar(&c.For, "for", 10*time.Second, "length of each measurement (ours and the baseline)")
	fs.IntVar(&c.Runs, "runs", 3, "runs (each: ours and the baseline, alternating which goes first)")
	fs.DurationVar(&c.Settle, "settle", 10*time.Second, "deadline for the presence rows to match the connected users")
	c.System.Flags(fs)
	fs.BoolVar(&c.Quiet, "quiet", false, "less progress output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.Conns < 1 || c.Runs < 1 || c.For <= 0 {
		return errors.New("need --conns ≥ 1, --runs ≥ 1 and --for > 0")
	}
	runs, err := runChurnBench(ctx, c)
	printChurn(os.Stdout, c, runs)
	return err
}

// runChurnBench starts the system once (the api and one realtime; no dispatcher: nothing is
// posted) and measures --runs runs on it; it returns the runs measured so far with the first error.
func runChurnBench(ctx context.Context, c churnConfig) ([]churnRun, error) {
	bench.RaiseNoFile()
	cfg := loadConfig{Users: c.Conns, Quiet: c.Quiet, log: os.Stderr}
	sc := c.System
	sc.NoDispatcher, sc.Realtime, sc.Log = true, 1, cfg.progress
	sys, err := bench.StartSystem(ctx, sc)
	if err != nil {
		return nil, err
	}
	defer sys.Stop()
	w, err := seed(ctx, sys.DBURL, sys.JWTSecret, cfg)
	if err != nil {
		return nil, err
	}
	db, err := pgx.Connect(ctx, sys.DBURL)
	if err != nil {
		return nil, err
	}
	defer db.Close(context.Background())
	var runs []churnRun
	for run := range c.Runs {
		var r churnRun
		ours := func() error {
			cfg.progress("churn run %d/%d: ours, %d loops for %s", run+1, c.Runs, c.Conns, c.For)
			return wsChurn(ctx, c, sys, w, db, &r)
		}
		base := func() (err error) {
			cfg.progress("churn run %d/%d: raw queue.bind + queue.unbind, %d loops for %s", run+1, c.Runs, c.Conns, c.For)
			r.Baseline, err = bindChurn(ctx, c.System.AMQPURL, w.ids, c.For)
			return err
		}
		steps := []func() error{base, ours}
		if run%2 == 1 {
			slices.Reverse(steps)
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return runs, fmt.Errorf("run %d: %w", run+1, err)
			}
		}
		cfg.progress("churn run %d: ours %.0f/s, baseline %.0f/s, presence %d rows for %d connected (settled in %s)",
			run+1, r.Ours.perSec(), r.Baseline.perSec(), r.PresenceRows, r.Connected, r.Settle.Round(time.Millisecond))
		runs = append(runs, r)
	}
	return runs, nil
}

// wsChurn runs the client loops against the realtime instance, then checks its presence rows.
func wsChurn(ctx context.Context, c churnConfig, sys *bench.System, w *world, db *pgx.Conn, r *churnRun) error {
	addr := strings.TrimPrefix(sys.WSURLs[0], "http://")
	pid := sys.PIDs()["realtime#0"]
	before, _ := bench.ReadProc(pid)
	open := make([]net.Conn, c.Conns)
	r.Ours = churnLoops(ctx, c.Conns, c.For, func(i int, last bool) (int64, error) {
		conn, err := rawConnect(ctx, addr, w.tokens[i])
		if err != nil {
			return 0, fmt.Errorf("connect: %w", err)
		}
		if last && i%2 == 0 {
			open[i] = conn // ends connected
			return 1, nil
		}
		if err := rawClose(conn); err != nil {
			return 1, fmt.Errorf("close: %w", err)
		}
		return 2, nil
	})
	if after, ok := bench.ReadProc(pid); ok && r.Ours.Ops > 0 {
		r.CPUPerK = (after.CPU - before.CPU) / float64(r.Ours.Ops) * 1000
	}
	want := map[string]bool{}
	for i, conn := range open {
		if conn != nil {
			want[w.ids[i]] = true
		}
	}
	r.Connected = len(want)
	var err error
	r.PresenceRows, r.PresenceExact, r.Settle, err = waitPresence(ctx, db, sys.Instances[0], want, c.Settle)
	for _, conn := range open {
		if conn != nil {
			conn.Close()
		}
	}
	if err != nil {
		return err
	}
	// The next run starts from no presence at all.
	if n, ok, _, err := waitPresence(ctx, db, sys.Instances[0], nil, c.Settle); err != nil || !ok {
		return errors.Join(err, fmt.Errorf("%d presence rows left after every socket closed", n))
	}
	return nil
}

// churnLoops runs n loops until dur has passed, each calling op(i, last) over and over; last is
// true for the call made after the deadline (the loop's final one). op returns how many
// operations it completed. Elapsed is until the last loop ended.
func churnLoops(ctx context.Context, n int, dur time.Duration, op func(i int, last bool) (int64, error)) churnOps {
	var (
		ops, errs atomic.Int64
		once      sync.Once
		first     string
		wg        sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(dur)
	for i := range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				last := !time.Now().Before(end)
				k, err := op(i, last)
				ops.Add(k)
				if err != nil {
					errs.Add(1)
					once.Do(func() { first = err.Error() })
				}
				if last {
					return
				}
			}
		})
	}
	wg.Wait()
	return churnOps{Ops: ops.Load(), Errors: errs.Load(), FirstErr: first, Elapsed: time.Since(start)}
}

// waitPresence polls the instance's presence rows until they are exactly want's users or within
// passes; it returns the last count, whether it matched and when.
func waitPresence(ctx context.Context, db *pgx.Conn, instance string, want map[string]bool, within time.Duration) (int, bool, time.Duration, error) {
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		rows, err := db.Query(ctx, "SELECT user_id::text FROM presence WHERE instance_id = $1", instance)
		if err != nil {
			return 0, false, 0, err
		}
		users, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return 0, false, 0, err
		}
		exact := len(users) == len(want)
		for _, u := range users {
			exact = exact && want[u]
		}
		if exact || time.Since(start) > within {
			return len(users), exact, time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return len(users), false, time.Since(start), ctx.Err()
		case <-tick.C:
		}
	}
}

// bindChurn is the baseline: len(keys) loops, each binding its key to a queue and unbinding it
// again for dur, as the old per-user binding consumer did per connect and disconnect (see
// churnUsage). It counts binds + unbinds.
func bindChurn(ctx context.Context, amqpURL string, keys []string, dur time.Duration) (churnOps, error) {
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		return churnOps{}, err
	}
	defer conn.Close()
	chans := make([]*amqp091.Channel, 1+1+4) // setup, binds, unbinds
	for i := range chans {
		if chans[i], err = conn.Channel(); err != nil {
			return churnOps{}, err
		}
	}
	exchange := "bench.churn." + bench.RandomHex(6)
	if err := chans[0].ExchangeDeclare(exchange, "direct", false, false, false, false, nil); err != nil {
		return churnOps{}, err
	}
	defer chans[0].ExchangeDelete(exchange, false, false)
	q, err := chans[0].QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return churnOps{}, err
	}
	type req struct {
		key  string
		done chan error
	}
	binds, unbinds := make(chan req), make(chan req)
	var workers sync.WaitGroup
	workers.Go(func() {
		for r := range binds {
			batch := []req{r}
		more:
			for len(batch) < 512 {
				select {
				case r, ok := <-binds:
					if !ok {
						break more
					}
					batch = append(batch, r)
				default:
					break more
				}
			}
			var err error
			for i, r := range batch {
				if err == nil {
					err = chans[1].QueueBind(q.Name, r.key, exchange, i < len(batch)-1, nil)
				}
			}
			for _, r := range batch {
				r.done <- err
			}
		}
	})
	for _, ch := range chans[2:] {
		workers.Go(func() {
			for r := range unbinds {
				r.done <- ch.QueueUnbind(q.Name, r.key, exchange, nil)
			}
		})
	}
	dones := make([]chan error, len(keys))
	res := churnLoops(ctx, len(keys), dur, func(i int, _ bool) (int64, error) {
		if dones[i] == nil {
			dones[i] = make(chan error, 1)
		}
		binds <- req{keys[i], dones[i]}
		if err := <-dones[i]; err != nil {
			return 0, fmt.Errorf("queue.bind: %w", err)
		}
		unbinds <- req{keys[i], dones[i]}
		if err := <-dones[i]; err != nil {
			return 1, fmt.Errorf("queue.unbind: %w", err)
		}
		return 2, nil
	})
	close(binds)
	close(unbinds)
	workers.Wait()
	if res.Errors > 0 {
		return res, fmt.Errorf("%d failed binding operations, the first: %s", res.Errors, res.FirstErr)
	}
	return res, nil
}

func printChurn(out io.Writer, c churnConfig, runs []churnRun) {
	if len(runs) == 0 {
		return
	}
	col := func(get func(r churnRun) float64) []float64 {
		var v []float64
		for _, r := range runs {
			v = append(v, get(r))
		}
		return v
	}
	exact, errs := 0, int64(0)
	for _, r := range runs {
		errs += r.Ours.Errors
		if r.PresenceExact {
			exact++
		}
	}
	fmt.Fprintf(out, "\nsocialbench churn: %d client loops for %s on one social realtime; %d runs, median (min–max)\n", c.Conns, c.For, len(runs))
	fmt.Fprintf(out, "  ours: websocket connects+disconnects/s     %s\n", bench.Spread(col(func(r churnRun) float64 { return r.Ours.perSec() }), "%.0f"))
	fmt.Fprintf(out, "  baseline: raw queue.bind+queue.unbind/s    %s\n", bench.Spread(col(func(r churnRun) float64 { return r.Baseline.perSec() }), "%.0f"))
	fmt.Fprintf(out, "  ratio ours ÷ baseline (goal ≥ %d)           %s\n", churnGoal, bench.Spread(col(func(r churnRun) float64 { return r.Ours.perSec() / r.Baseline.perSec() }), "%.2f"))
	fmt.Fprintf(out, "  realtime CPU-s per 1,000 connects+discon.  %s\n", bench.Spread(col(func(r churnRun) float64 { return r.CPUPerK }), "%.3f"))
	fmt.Fprintf(out, "  presence exact at the end: %d of %d runs (rows %s for %s connected users, settled in %s ms)\n", exact, len(runs),
		bench.Spread(col(func(r churnRun) float64 { return float64(r.PresenceRows) }), "%.0f"),
		bench.Spread(col(func(r churnRun) float64 { return float64(r.Connected) }), "%.0f"),
		bench.Spread(col(func(r churnRun) float64 { return float64(r.Settle.Milliseconds()) }), "%.0f"))
	fmt.Fprintf(out, "  client errors (ours): %d", errs)
	for _, r := range runs {
		if r.Ours.FirstErr != "" {
			fmt.Fprintf(out, "; first: %s", r.Ours.FirstErr)
			break
		}
	}
	fmt.Fprintln(out)
}

// rawConnect opens a websocket on the realtime at addr with a Bearer token, by hand: a request
// written in one go and the 101 read from a small buffer. The loops measure the server's connect
// and close, so their client is as cheap as a client can be (a full websocket client cost the
// bench more CPU than the realtime spent on the same connects, on the same cores).
func rawConnect(ctx context.Context, addr, token string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := "GET /post/feed/posted HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key[:]) +
		"\r\nAuthorization: Bearer " + token + "\r\n\r\n"
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, err
	}
	// The server sends nothing after the 101 until a frame: reading up to the blank line leaves
	// nothing of the stream behind in a buffer.
	res, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("upgrade: %s", res.Status)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// rawClose runs the websocket close handshake from the client's side: a masked close (1000), then
// the server's close and the end of the stream.
func rawClose(conn net.Conn) error {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	// FIN + close, masked, 2 bytes of payload; a zero mask leaves the status (1000) as it is.
	if _, err := conn.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, conn)
	return err
}
