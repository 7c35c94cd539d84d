package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/socialnet/social/cmd/socialbench/internal/bench"
)

const failoverUsage = `socialbench failover — a broker failure under --users connected sockets on one realtime instance

` + "`social api`, `social dispatcher` and one `social realtime`" + ` start here; the realtime reaches RabbitMQ
through a TCP proxy of this process. --users users follow one author and hold a socket each (user
1 also follows a probe author). Each run cuts every connection through the proxy (a broker node
failing; the proxy accepts again at once, as the next node of a cluster would), then the author
posts through the api (the dispatcher relays it, and the realtime has no queue for a while), and
the probe author posts every --probe-every until user 1 receives one. Reported, from the cut:
sockets the server closed (goal 0), the first probe frame on a client after the realtime
reconnected (goal ≤ 2 s), the first and the last follower receiving the author's post (the gap
fill from PostgreSQL). Median of --runs runs on one system, and their range.

Flags:
`

type failoverConfig struct {
	Users      int
	Runs       int
	ProbeEvery time.Duration
	Within     time.Duration
	System     bench.SystemConfig
	Quiet      bool
}

// failoverRun is one cut.
type failoverRun struct {
	Closed     int64         // sockets the server closed (or that broke) from the cut to the end of the gap fill
	FirstProbe time.Duration // cut -> the first probe frame on user 1's socket
	FirstPost  time.Duration // cut -> the author's post on its first follower's socket
	AllPost    time.Duration // cut -> the post on the last follower's socket
	Missing    int           // followers without the post at the deadline
	Duplicates int
}

func runFailover(ctx context.Context, args []string) error {
	var c failoverConfig
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), failoverUsage); fs.PrintDefaults() }
	fs.IntVar(&c.Users, "users", 10000, "connected followers of the author (one socket each)")
	fs.IntVar(&c.Runs, "runs", 3, "cuts, one after the other on the same system")
	fs.DurationVar(&c.ProbeEvery, "probe-every", 50*time.Millisecond, "interval of the probe author's posts after a cut")
	fs.DurationVar(&c.Within, "within", time.Minute, "deadline for the probe and for every follower to have the post")
	c.System.Flags(fs)
	fs.BoolVar(&c.Quiet, "quiet", false, "less progress output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.Users < 2 || c.Runs < 1 || c.ProbeEvery <= 0 || c.Within <= 0 {
		return errors.New("need --users ≥ 2, --runs ≥ 1, positive --probe-every and --within")
	}
	runs, err := runFailoverBench(ctx, c)
	printFailover(os.Stdout, c, runs)
	return err
}

// runFailoverBench sets the system up once and cuts its realtime's broker connection --runs
// times; it returns the runs measured so far with the first error.
func runFailoverBench(ctx context.Context, c failoverConfig) ([]failoverRun, error) {
	bench.RaiseNoFile()
	u, err := url.Parse(c.System.AMQPURL)
	if err != nil {
		return nil, fmt.Errorf("--amqp-url: %w", err)
	}
	proxy, err := newTCPProxy(u.Host)
	if err != nil {
		return nil, err
	}
	defer proxy.close()
	u.Host = proxy.addr()
	// User 0 is the author, 1..Users its connected followers, Users+1 the probe author.
	cfg := loadConfig{Users: c.Users + 2, Celebrity: c.Users, CelebrityEvery: 1, Connected: c.Users, Tabs: 1,
		Straggle: c.Within, MaxInflight: 16, Quiet: c.Quiet, log: os.Stderr}
	sc := c.System
	sc.Log = cfg.progress
	sys, err := bench.StartSystem(ctx, sc)
	if err != nil {
		return nil, err
	}
	defer sys.Stop()
	if err := sys.AddRealtime(ctx, u.String()); err != nil {
		return nil, err
	}
	w, err := seed(ctx, sys.DBURL, sys.JWTSecret, cfg)
	if err != nil {
		return nil, err
	}
	probeAuthor := c.Users + 1
	if err := follow(ctx, sys.APIURL, w.tokens[1], w.ids[probeAuthor]); err != nil {
		return nil, err
	}
	cfg.progress("connecting %d sockets", c.Users)
	fleet, err := connectFleet(ctx, cfg, sys.WSURLs, w)
	if err != nil {
		return nil, err
	}
	defer fleet.close()
	var probeSock *sock
	for _, s := range fleet.socks {
		if s.user == 1 {
			probeSock = s
		}
	}
	lag := startLagQuery(ctx, sys.DBURL, outboxLagQuery)
	defer lag.stop()
	l := newLoad(cfg, sys.APIURL, w, fleet)
	// The probe load's world has the probe author as its user 0 (every post is its), followed by
	// user 1 of the fleet.
	probe := newLoad(loadConfig{Celebrity: 1, CelebrityEvery: 1, Tabs: 1, MaxInflight: 16}, sys.APIURL,
		&world{ids: []string{w.ids[probeAuthor]}, tokens: []string{w.tokens[probeAuthor]}, connFollowers: [][]int32{{1}}}, fleet)

	warm := l.finish(ctx, l.once(ctx, "warm-up"), lag, nil)
	if warm.Missing > 0 || warm.Accepted != 1 {
		return nil, fmt.Errorf("warm-up post: %d accepted, %d of %d frames missing", warm.Accepted, warm.Missing, warm.Expected)
	}
	var runs []failoverRun
	for run := range c.Runs {
		cfg.progress("failover run %d/%d: cutting the realtime's broker connection", run+1, c.Runs)
		r, err := failoverCut(ctx, c, proxy, l, probe, probeSock, lag)
		if err != nil {
			return runs, fmt.Errorf("run %d: %w", run+1, err)
		}
		cfg.progress("failover run %d: %d sockets closed, first probe %s, post first %s, all %s, missing %d", run+1,
			r.Closed, r.FirstProbe.Round(time.Millisecond), r.FirstPost.Round(time.Millisecond), r.AllPost.Round(time.Millisecond), r.Missing)
		runs = append(runs, r)
		if err := sys.WaitReady(ctx, sys.WSURLs[0]+"/readyz", c.Within); err != nil {
			return runs, err
		}
	}
	return runs, nil
}

// failoverCut is one run: cut, the author's post, probes until user 1 has one, the gap fill.
func failoverCut(ctx context.Context, c failoverConfig, proxy *tcpProxy, l, probe *load, probeSock *sock, lag *outboxLag) (failoverRun, error) {
	var r failoverRun
	ended := l.fleet.ended.Load()
	probed := probe.expected.Load()
	cut := time.Now()
	proxy.cut()

	pctx, stopProbes := context.WithCancel(ctx)
	probePh := newPhase("probe", 0, 1, 0)
	var probes sync.WaitGroup
	probes.Go(func() {
		tick := time.NewTicker(c.ProbeEvery)
		defer tick.Stop()
		for {
			probe.post(pctx, probePh, time.Now())
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	ph := l.once(ctx, "failover")
	first, ok := firstFrameOf(ctx, probe, probeSock, cut.Add(c.Within))
	stopProbes()
	probes.Wait()
	if !ok {
		return r, fmt.Errorf("no probe frame within %s of the cut", c.Within)
	}
	r.FirstProbe = time.Unix(0, first).Sub(cut)
	// Every probe accepted is owed to user 1 too (by the gap fill or live): drain waits for them.
	l.expected.Add(probe.expected.Load() - probed)
	probe.mu.Lock()
	l.mu.Lock()
	for id, p := range probe.posts {
		l.posts[id] = p
	}
	l.mu.Unlock()
	probe.mu.Unlock()

	res := l.finish(ctx, ph, lag, nil)
	r.Closed = l.fleet.ended.Load() - ended
	r.Missing, r.Duplicates = res.Missing, res.Duplicates
	if res.Accepted != 1 {
		return r, fmt.Errorf("the author's post was not accepted: %v", res.Statuses)
	}
	p := ph.accepted[0]
	r.FirstPost, r.AllPost = time.Unix(0, p.first).Sub(cut), time.Unix(0, p.last).Sub(cut)
	return r, nil
}

// firstFrameOf polls s until it holds a frame of one of l's posts (or deadline), and returns
// its arrival (unix ns).
func firstFrameOf(ctx context.Context, l *load, s *sock, deadline time.Time) (int64, bool) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		l.mu.Lock()
		s.mu.Lock()
		var at int64
		for _, f := range s.frames {
			if l.posts[f.post] != nil && (at == 0 || f.at < at) {
				at = f.at
			}
		}
		s.mu.Unlock()
		l.mu.Unlock()
		if at != 0 {
			return at, true
		}
		select {
		case <-ctx.Done():
			return 0, false
		case <-tick.C:
		}
	}
	return 0, false
}

// follow makes the token's user follow id through the api (PUT /friend/set/{id}).
func follow(ctx context.Context, api, token, id string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, api+"/friend/set/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT /friend/set: %s", resp.Status)
	}
	return nil
}

// tcpProxy forwards TCP to a target; cut drops every connection through it, as a failing broker
// node would, while new connections are still accepted (the next node of a cluster).
type tcpProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newTCPProxy(target string) (*tcpProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &tcpProxy{ln: ln, target: target}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(up, c); up.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, up); c.Close() })
		}
	})
	return p, nil
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

func printFailover(out io.Writer, c failoverConfig, runs []failoverRun) {
	if len(runs) == 0 {
		return
	}
	col := func(get func(r failoverRun) float64) string {
		var v []float64
		for _, r := range runs {
			v = append(v, get(r))
		}
		return bench.Spread(v, "%.0f")
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	fmt.Fprintf(out, "\nsocialbench failover: %d connected followers on one social realtime, its broker connection cut; %d runs, median (min–max)\n", c.Users, len(runs))
	fmt.Fprintf(out, "  sockets closed by the server (goal 0)                %s\n", col(func(r failoverRun) float64 { return float64(r.Closed) }))
	fmt.Fprintf(out, "  cut -> first probe frame on a client, ms (goal ≤ 2000) %s\n", col(func(r failoverRun) float64 { return ms(r.FirstProbe) }))
	fmt.Fprintf(out, "  cut -> the post on its first follower, ms            %s\n", col(func(r failoverRun) float64 { return ms(r.FirstPost) }))
	fmt.Fprintf(out, "  cut -> the post on all %d followers (gap fill), ms %s\n", c.Users, col(func(r failoverRun) float64 { return ms(r.AllPost) }))
	fmt.Fprintf(out, "  followers missing the post / duplicates               %s / %s\n",
		col(func(r failoverRun) float64 { return float64(r.Missing) }), col(func(r failoverRun) float64 { return float64(r.Duplicates) }))
}
