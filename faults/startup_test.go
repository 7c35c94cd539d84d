//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/faults/testinfra"
)

// TestSocketOpenedBeforeTheConsumerIsReadyMissesNothing is issue #11's start-up race made wide:
// the realtime instance starts while its broker is unreachable (a proxy port nothing listens on
// yet), so its consumer has no queue and no binding. A client opens its socket then, and posts
// are created after the socket opened. Contract (design.md §4): a connected client gets every
// post created after its socket opened. Failure mode guarded: the server answered 101 while the
// binding existed only on paper, the dispatcher's frames were unroutable (dropped by the broker),
// and the socket was later closed with 1012 — a client that had seen no frame has no position to
// resume from. The client here never reconnects once open: what it opened must deliver.
func TestSocketOpenedBeforeTheConsumerIsReadyMissesNothing(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	exchange := "test.feed." + uuid.NewString()
	t.Cleanup(func() { amqptest.DeleteExchange(t, exchange) })
	// A free port for the broker of the realtime instance, dead until the proxy listens on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	brokerAddr := ln.Addr().String()
	ln.Close()

	env := func(amqpURL string) map[string]string {
		return map[string]string{
			"DATABASE_URL": db.URL, "JWT_SECRET": jwtSecret, "AMQP_EXCHANGE": exchange, "AMQP_URL": amqpURL,
			"BCRYPT_COST": "4", "LOG_LEVEL": "info", "HTTP_ADDR": "127.0.0.1:0", "WS_ADDR": "127.0.0.1:0",
			"DISPATCHER_ADDR": "127.0.0.1:0", "SHUTDOWN_TIMEOUT": "5s",
		}
	}
	apiP := testinfra.StartProcess(t, "api", socialBin, env(amqptest.URL()), "api")
	dispatcher := testinfra.StartProcess(t, "dispatcher", socialBin, env(amqptest.URL()), "dispatcher")
	realtime := testinfra.StartProcess(t, "realtime", socialBin, env("amqp://guest:guest@"+brokerAddr+"/"), "realtime")
	apiURL := "http://" + apiP.Addr(t, "api")
	dispatcherURL := "http://" + dispatcher.Addr(t, "dispatcher")
	rt := realtime.Addr(t, "realtime")
	wsURL := "ws://" + rt + "/post/feed/posted"
	waitStatus(t, apiURL+"/readyz", http.StatusOK, 60*time.Second)
	waitStatus(t, dispatcherURL+"/readyz", http.StatusOK, 60*time.Second)
	waitStatus(t, "http://"+rt+"/readyz", http.StatusServiceUnavailable, 10*time.Second)

	api := newAPIClient(t, apiURL)
	author := api.register("author")
	follower := api.register("follower")
	api.follow(follower, author)

	var (
		sock    *websocket.Conn
		wantIDs []string // posts created after sock opened
	)
	dial := func() (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		c, res, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + follower.token}}})
		if err != nil {
			status := 0
			if res != nil {
				status = res.StatusCode
			}
			return status, err
		}
		sock = c
		t.Cleanup(func() { c.CloseNow() })
		return http.StatusSwitchingProtocols, nil
	}
	// One attempt while the instance has no broker: it must not open a socket it cannot feed.
	status, err := dial()
	t.Logf("dial while the consumer is down: status %d (%v)", status, err)
	if sock != nil {
		// Posts created after this socket opened must reach it.
		r, id := api.post(author, "after the socket opened, broker still unreachable")
		api.must(r, "post while the consumer is down")
		wantIDs = append(wantIDs, id)
		wait.For(t, 30*time.Second, "the post relayed", func() bool { return pending(t, db.Pool) == 0 })
	} else if status != http.StatusServiceUnavailable {
		t.Fatalf("dial while the consumer is down: status %d (%v), want 503 (or a socket that delivers)", status, err)
	}

	amqptest.NewProxyOn(t, brokerAddr, hostPort(t, amqptest.URL()))
	waitStatus(t, "http://"+rt+"/readyz", http.StatusOK, 30*time.Second)
	if sock == nil {
		// A client retries a refused upgrade (503 with Retry-After) before its socket is open.
		wait.For(t, 30*time.Second, "socket opened once the consumer is ready", func() bool {
			_, err := dial()
			return err == nil
		})
	}
	r, id := api.post(author, "after the socket opened, broker reachable")
	api.must(r, "post after the consumer is ready")
	wantIDs = append(wantIDs, id)

	got := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(got) < len(wantIDs) {
		_, b, err := sock.Read(ctx)
		if err != nil {
			t.Fatalf("socket ended (close status %d) with %d of %d posts created after it opened: %v",
				websocket.CloseStatus(err), len(got), len(wantIDs), err)
		}
		var fr feedFrame
		if err := json.Unmarshal(b, &fr); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		got[fr.PostID] = true
	}
	for _, id := range wantIDs {
		if !got[id] {
			t.Errorf("post %s not received", id)
		}
	}
}

// hostPort is the host:port of an AMQP URL.
func hostPort(t *testing.T, amqpURL string) string {
	t.Helper()
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
