package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/internal/wait"
)

// opsAll is `social all` on a fresh database and its own exchange, listening on a free port.
type opsAll struct {
	t    testing.TB
	db   *pgtest.DB
	base string // http://127.0.0.1:port
}

func startOpsAll(t testing.TB) *opsAll {
	t.Helper()
	db := pgtest.NewEmpty(t) // `all` migrates it
	exchange := amqptest.Exchange(t, "test.outbox-e2e.")
	addrs := make(chan net.Addr, 4)
	var stderr syncBuffer
	a := &app{stdout: &stderr, stderr: &stderr, onListen: func(_ string, addr net.Addr) { addrs <- addr }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.run(ctx, []string{"all"}, map[string]string{
			"DATABASE_URL": db.URL, "HTTP_ADDR": "127.0.0.1:0", "BCRYPT_COST": "4", "LOG_LEVEL": "warn",
			"AMQP_EXCHANGE": exchange, "JWT_SECRET": testSecret})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("social all: %v\n%s", err, stderr.String())
		}
	})
	select {
	case addr := <-addrs:
		e := &opsAll{t: t, db: db, base: "http://" + addr.String()}
		// Ready: the instance is registered, its queue is live and the dispatcher relays.
		wait.For(t, 30*time.Second, "/readyz", func() bool {
			res, err := http.Get(e.base + "/readyz")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == http.StatusOK
		})
		return e
	case err := <-done:
		t.Fatalf("social all stopped: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("social all did not listen within 30s\n%s", stderr.String())
	}
	return nil
}

// call sends a JSON request and decodes a 200 answer into out (when not nil).
func (e *opsAll) call(method, path, token string, body any, out any) {
	e.t.Helper()
	var rd bytes.Buffer
	if body != nil {
		_ = json.NewEncoder(&rd).Encode(body)
	}
	req, _ := http.NewRequest(method, e.base+path, &rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("%s %s = %d", method, path, res.StatusCode)
	}
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			e.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
}

// user registers a user and logs in: id and token.
func (e *opsAll) user(name string) (string, string) {
	e.t.Helper()
	var reg struct {
		UserID string `json:"user_id"`
	}
	e.call(http.MethodPost, "/user/register", "", map[string]string{"first_name": name, "second_name": "E2e",
		"birthdate": "1990-01-02", "biography": "", "city": "Riga", "password": "password-" + name}, &reg)
	var login struct {
		Token string `json:"token"`
	}
	e.call(http.MethodPost, "/login", "", map[string]string{"id": reg.UserID, "password": "password-" + name}, &login)
	return reg.UserID, login.Token
}

// opsSocket is a follower's websocket collecting every frame it receives.
type opsSocket struct {
	mu     sync.Mutex
	frames [][]byte
}

func (e *opsAll) socket(token string) *opsSocket {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.base, "http")+wsPath,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		cancel()
		e.t.Fatalf("dial websocket: %v", err)
	}
	s := &opsSocket{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.frames = append(s.frames, b)
			s.mu.Unlock()
		}
	}()
	e.t.Cleanup(func() {
		_ = c.Close(websocket.StatusNormalClosure, "")
		cancel()
		<-done
	})
	return s
}

func (s *opsSocket) received() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.frames)
}

// scrape returns each metric family of /metrics summed over its series: the value of counters and
// gauges, the observation count of histograms.
func (e *opsAll) scrape() map[string]float64 {
	e.t.Helper()
	res, err := http.Get(e.base + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		e.t.Fatalf("parse /metrics: %v", err)
	}
	out := make(map[string]float64)
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch {
			case m.Counter != nil:
				out[name] += m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[name] += m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[name] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// TestOutboxReplayRedeliversTheRangeAndMetricsMove runs `social all` with the real broker, a real
// follower websocket and the real dispatcher: ten posts reach the follower; `outbox replay` of
// positions 3..7 of them re-delivers exactly those five frames, byte for byte (same position and
// event), and nothing else; the /metrics series named in docs/operations.md exist and move.
func TestOutboxReplayRedeliversTheRangeAndMetricsMove(t *testing.T) {
	t.Parallel()
	e := startOpsAll(t)
	before := e.scrape()
	author, authorToken := e.user("Ann")
	_, followerToken := e.user("Fay")
	e.call(http.MethodPut, "/friend/set/"+author, followerToken, nil, nil)
	sock := e.socket(followerToken)

	for i := range 10 {
		e.call(http.MethodPost, "/post/create", authorToken, map[string]string{"text": fmt.Sprintf("post %d", i)}, nil)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(sock.received()) < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	live := sock.received()
	if len(live) != 10 {
		t.Fatalf("the follower got %d frames, want 10:\n%s\noutbox: %d relayed", len(live), bytes.Join(live, []byte("\n")),
			e.db.Count(t, "outbox", "status = 'relayed'"))
	}
	positions := make([]int64, len(live))
	for i, b := range live {
		var f domain.FeedFrame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		positions[i] = f.Position
	}
	if !slices.IsSorted(positions) {
		t.Fatalf("live positions out of order: %v", positions)
	}
	wait.For(t, 10*time.Second, "outbox drained", func() bool { return e.db.Count(t, "outbox", "status <> 'relayed'") == 0 })

	from, to := positions[2], positions[6]
	r := runCLI(context.Background(), e.db.URL, "outbox", "replay",
		"--from-position", strconv.FormatInt(from, 10), "--to-position", strconv.FormatInt(to, 10))
	if r.err != nil || !strings.Contains(r.stdout, "enqueued 5 events") {
		t.Fatalf("replay: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	// A live post after the replay: the dispatcher claims in id order, so its frame comes after
	// every replayed one, and once it arrived no replayed frame is still on its way.
	e.call(http.MethodPost, "/post/create", authorToken, map[string]string{"text": "after the replay"}, nil)
	wait.For(t, 15*time.Second, "replayed frames and the live one", func() bool {
		got := sock.received()
		return len(got) > 10 && bytes.Contains(got[len(got)-1], []byte("after the replay"))
	})
	again := sock.received()[10:]
	if len(again) != 6 {
		t.Fatalf("after replay of %d..%d the follower got %d frames, want 5 replayed + 1 live:\n%s", from, to, len(again), bytes.Join(again, []byte("\n")))
	}
	for i, b := range again[:5] {
		if !bytes.Equal(b, live[2+i]) {
			t.Errorf("replayed frame %d\n got %s\nwant %s (the original, byte for byte)", i, b, live[2+i])
		}
	}

	// Counters are incremented after the broker confirmed and the rows were marked, which can be a
	// moment after the follower already has the frame.
	var after map[string]float64
	wait.For(t, 10*time.Second, "relay counters", func() bool {
		after = e.scrape()
		return after["social_outbox_relayed_rows_total"]-before["social_outbox_relayed_rows_total"] >= 16 &&
			after["social_ws_frames_sent_total"]-before["social_ws_frames_sent_total"] >= 16
	})
	if t.Failed() {
		return
	}
	t.Run("metrics exist and move", func(t *testing.T) {
		for _, name := range []string{
			"social_http_requests_total", "social_http_request_duration_seconds", "social_posts_created_total",
			"social_outbox_relayed_rows_total", "social_outbox_published_messages_total",
			"social_outbox_publish_errors_total", "social_outbox_dead_rows_total", "social_outbox_relay_latency_seconds",
			"social_outbox_batch_phase_seconds", "social_outbox_presence_load_seconds",
			"social_outbox_pending_rows", "social_outbox_oldest_pending_age_seconds", "social_outbox_dead_rows",
			"social_ws_connections", "social_ws_frames_sent_total", "social_ws_slow_client_disconnects_total",
			"social_ws_delivery_latency_seconds",
		} {
			if _, ok := after[name]; !ok {
				t.Errorf("/metrics lacks %s", name)
			}
		}
		moved := func(name string, atLeast float64) {
			t.Helper()
			if d := after[name] - before[name]; d < atLeast {
				t.Errorf("%s moved by %v, want at least %v", name, d, atLeast)
			}
		}
		moved("social_http_requests_total", 11+4+1)       // posts, register/login ×2, friend
		moved("social_http_request_duration_seconds", 16) // observation count
		moved("social_posts_created_total", 11)
		moved("social_outbox_relayed_rows_total", 11+5)    // live posts and the replayed rows
		moved("social_outbox_published_messages_total", 2) // one per instance per claimed batch: live and replay batches at least
		moved("social_outbox_relay_latency_seconds", 16)
		moved("social_outbox_batch_phase_seconds", 2*4) // claim, route, publish and mark of two batches at least
		moved("social_ws_frames_sent_total", 16)
		moved("social_ws_delivery_latency_seconds", 11) // live frames
		if after["social_ws_connections"] != 1 {
			t.Errorf("social_ws_connections = %v, want 1", after["social_ws_connections"])
		}
		if after["social_outbox_dead_rows"] != 0 || after["social_outbox_publish_errors_total"] != 0 {
			t.Errorf("dead rows %v, publish errors %v: want none", after["social_outbox_dead_rows"], after["social_outbox_publish_errors_total"])
		}
	})
}
