package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/socialnet/social/cmd/socialbench/internal/bench"
)

// loadConfig is the graph a benchmark seeds (seed.go), the sockets it opens (fleet.go) and the
// load it posts (e2e, fanout, failover).
type loadConfig struct {
	Users          int // registered users
	Followers      int // followers of each regular user
	Celebrity      int // followers of user 0, the celebrity (0: no celebrity)
	CelebrityEvery int // every Nth post is the celebrity's (0: never)
	Connected      int // users with open websockets (the first N; the celebrity's followers first)
	Tabs           int // sockets per connected user
	// Proto is the websocket protocol of the fleet: "" (ours, one frame per message), "lines"
	// (ours with ?batch=lines) or "centrifugo".
	Proto string
	// CentrifugoToken mints a Centrifugo connection token for a user id (Proto "centrifugo").
	CentrifugoToken func(userID string) (string, error)

	Rate        float64       // open-loop posts/s; --find-max's first step
	Step        time.Duration // length of each find-max step
	MaxP99      time.Duration // find-max's bound on end-to-end p99
	Straggle    time.Duration // how long to wait for missing frames after a phase
	MaxInflight int           // bound on concurrent requests (latency still counts from the scheduled time)
	Quiet       bool
	log         io.Writer
}

func (c loadConfig) progress(format string, args ...any) {
	if c.Quiet || c.log == nil {
		return
	}
	fmt.Fprintf(c.log, format+"\n", args...)
}

// load sends POST /post/create on a schedule and attributes the frames the fleet receives to the
// posts that caused them.
type load struct {
	cfg    loadConfig
	api    string
	w      *world
	fleet  *fleet
	client *http.Client

	mu    sync.Mutex
	posts map[uuid.UUID]*postRec
	seq   atomic.Int64 // post number across phases: picks the author
	// expected is the number of frames every accepted post so far should produce.
	expected atomic.Int64
}

// postRec is one accepted post.
type postRec struct {
	ph    *phase
	sched int64 // scheduled send time (unix ns): latencies count from here
	done  int64 // the 200's arrival (unix ns)
	// first and last are the arrivals of its first and last frame (set by analysis).
	first, last int64
	expected    int32
	got         int32 // distinct sockets that received it (set by analysis)
	// celebrity marks a post of the celebrity (user 0): its latencies are reported apart, since
	// one such post is most of a phase's frames and its path differs (one message, many keys).
	celebrity bool
}

// phase is one stretch of load with its raw measurements.
type phase struct {
	name       string
	targetRate float64 // 0 for closed loop
	workers    int
	start      time.Time
	dur        time.Duration

	mu       sync.Mutex
	sent     int
	accepted []*postRec
	httpMs   []float64 // of every request, failed ones too
	statuses map[string]int
	stalls   int // scheduled sends that waited for a free in-flight slot
}

func newLoad(cfg loadConfig, api string, w *world, f *fleet) *load {
	tr := &http.Transport{MaxIdleConns: cfg.MaxInflight, MaxIdleConnsPerHost: cfg.MaxInflight, IdleConnTimeout: time.Minute}
	return &load{cfg: cfg, api: api, w: w, fleet: f, posts: map[uuid.UUID]*postRec{},
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func newPhase(name string, rate float64, workers int, dur time.Duration) *phase {
	return &phase{name: name, targetRate: rate, workers: workers, dur: dur, start: time.Now(), statuses: map[string]int{}}
}

// author picks the author of post n: the celebrity every CelebrityEvery posts, otherwise the
// regular users in a scattered round robin.
func (l *load) author(n int64) int {
	if l.cfg.CelebrityEvery > 0 && l.cfg.Celebrity > 0 && n%int64(l.cfg.CelebrityEvery) == 0 {
		return 0
	}
	return 1 + int((n*7919)%int64(len(l.w.ids)-1))
}

// post sends one request scheduled at sched and records its outcome.
func (l *load) post(ctx context.Context, ph *phase, sched time.Time) {
	n := l.seq.Add(1)
	a := l.author(n)
	body := []byte(`{"text":"socialbench post ` + strconv.FormatInt(n, 10) + ` at ` + sched.Format(time.RFC3339Nano) + `"}`)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.api+"/post/create", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+l.w.tokens[a])
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	status := "error"
	var id uuid.UUID
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		status = strconv.Itoa(resp.StatusCode)
		if rerr == nil && resp.StatusCode == http.StatusOK {
			id, err = uuid.ParseBytes(bytes.Trim(bytes.TrimSpace(b), `"`))
			if err != nil {
				status = "200 (unparseable id)"
			}
		}
	}
	done := time.Now()
	ph.mu.Lock()
	ph.sent++
	ph.statuses[status]++
	ph.httpMs = append(ph.httpMs, float64(done.Sub(sched))/1e6)
	ph.mu.Unlock()
	if status != "200" {
		return
	}
	p := &postRec{ph: ph, sched: sched.UnixNano(), done: done.UnixNano(), expected: int32(l.w.expectedFrames(a, l.cfg.Tabs)), celebrity: a == 0}
	l.expected.Add(int64(p.expected))
	l.mu.Lock()
	l.posts[id] = p
	l.mu.Unlock()
	ph.mu.Lock()
	ph.accepted = append(ph.accepted, p)
	ph.mu.Unlock()
}

// openLoop sends rate requests per second for dur, each at its scheduled time whatever the
// server's answers do: a slow server builds a queue that shows in the latency (counted from the
// scheduled time), instead of slowing the sender down (no coordinated omission).
func (l *load) openLoop(ctx context.Context, name string, rate float64, dur time.Duration) *phase {
	ph := newPhase(name, rate, 0, dur)
	interval := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, l.cfg.MaxInflight)
	var wg sync.WaitGroup
	for i := 0; ; i++ {
		sched := ph.start.Add(time.Duration(i) * interval)
		if sched.Sub(ph.start) >= dur || ctx.Err() != nil {
			break
		}
		if d := time.Until(sched); d > 0 {
			time.Sleep(d)
		}
		select {
		case sem <- struct{}{}:
		default:
			ph.mu.Lock()
			ph.stalls++
			ph.mu.Unlock()
			sem <- struct{}{}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			l.post(ctx, ph, sched)
		}()
	}
	wg.Wait()
	return ph
}

// closedLoop runs workers that each send the next request as soon as the previous answered: the
// API's capacity at that concurrency, comparable with the SQL baseline.
func (l *load) closedLoop(ctx context.Context, name string, workers int, dur time.Duration) *phase {
	ph := newPhase(name, 0, workers, dur)
	end := ph.start.Add(dur)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(end) {
				l.post(ctx, ph, time.Now())
			}
		}()
	}
	wg.Wait()
	return ph
}

// once sends one post now, as its own phase.
func (l *load) once(ctx context.Context, name string) *phase {
	ph := newPhase(name, 0, 1, 0)
	l.post(ctx, ph, time.Now())
	ph.dur = time.Since(ph.start)
	return ph
}

// drain waits until every expected frame arrived and the outbox is empty, or the straggler
// deadline passes.
func (l *load) drain(ctx context.Context, lag *outboxLag) bool {
	deadline := time.Now().Add(l.cfg.Straggle)
	for {
		if l.fleet.received.Load() >= l.expected.Load() && lag.pending() == 0 {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finish waits for stragglers, then matches frames with posts and computes the phase's figures.
// s may be nil: no processes are reported.
func (l *load) finish(ctx context.Context, ph *phase, lag *outboxLag, s *bench.Sampler) phaseResult {
	end := time.Now()
	l.drain(ctx, lag)
	r := ph.result()
	l.analyzeFrames(ph, &r)
	r.Outbox = lag.window(ph.start, time.Now())
	if s != nil {
		r.Procs, r.MachineBusyPct = s.Window(ph.start, end)
	}
	l.cfg.progress("%s", r.oneLine())
	return r
}

// findMax raises the open-loop rate by half each step until the end-to-end p99 exceeds MaxP99,
// a frame goes missing, a request fails or fewer than 95%% of the target rate is accepted; then
// it bisects once between the last good and the first bad rate.
func (l *load) findMax(ctx context.Context, lag *outboxLag, s *bench.Sampler) (float64, []phaseResult) {
	step := l.cfg.Step
	var out []phaseResult
	good, bad := 0.0, 0.0
	try := func(rate float64) bool {
		l.cfg.progress("find-max: %.0f posts/s for %s", rate, step)
		ph := l.openLoop(ctx, fmt.Sprintf("find-max %.0f/s", rate), rate, step)
		r := l.finish(ctx, ph, lag, s)
		ok := r.Missing == 0 && r.Failed == 0 && r.E2E.P99 <= float64(l.cfg.MaxP99)/1e6 &&
			r.AcceptedPerSec >= 0.95*rate && r.Stalls == 0
		r.Sustainable = &ok
		out = append(out, r)
		return ok
	}
	for rate := l.cfg.Rate; len(out) < 12 && ctx.Err() == nil; rate *= 1.5 {
		if !try(rate) {
			bad = rate
			break
		}
		good = rate
	}
	if good > 0 && bad > 0 && ctx.Err() == nil {
		if mid := (good + bad) / 2; try(mid) {
			good = mid
		}
	}
	return good, out
}
