//go:build faults

package faults

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/google/uuid"

	"github.com/socialnet/social/faults/testinfra"
)

const jwtSecret = "faults-secret-faults-secret-faults-secret"

// stackConfig names the servers one set of our processes talks to.
type stackConfig struct {
	databaseURL string
	// dispatcherAMQP and realtimeAMQP are AMQP_URL values (comma-separated node lists).
	dispatcherAMQP, realtimeAMQP string
	exchange                     string
	requestTimeout               string
}

// stack is api + dispatcher + realtime, each a `social` process, as in compose.yaml.
type stack struct {
	api, dispatcher, realtime *testinfra.Process
	apiURL, dispatcherURL     string
	// dispatcherEnv starts another dispatcher like the first (a restart after a kill);
	// realtimeEnv another realtime instance.
	dispatcherEnv, realtimeEnv map[string]string
	wsURL                      string // ws://…/post/feed/posted
	realtimeURL                string // http://… of the realtime instance
}

func startStack(t *testing.T, c stackConfig) *stack {
	t.Helper()
	if c.exchange == "" {
		c.exchange = "test.feed." + uuid.NewString()
	}
	if c.requestTimeout == "" {
		c.requestTimeout = "2s"
	}
	base := map[string]string{
		"DATABASE_URL": c.databaseURL, "JWT_SECRET": jwtSecret, "AMQP_EXCHANGE": c.exchange,
		"BCRYPT_COST": "4", "LOG_LEVEL": "info", "REQUEST_TIMEOUT": c.requestTimeout,
		"HTTP_ADDR": "127.0.0.1:0", "WS_ADDR": "127.0.0.1:0", "DISPATCHER_ADDR": "127.0.0.1:0",
		"SHUTDOWN_TIMEOUT": "5s",
		// A killed instance is forgotten after 2 s instead of 10.
		"REALTIME_LEASE": "2s",
		// One author posts 20–50 times a second here, far above a person's POSTS_PER_USER.
		"POSTS_PER_USER": "1000000",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for bk, bv := range base {
			if _, ok := m[bk]; !ok {
				m[bk] = bv
			}
		}
		return m
	}
	s := &stack{}
	s.api = testinfra.StartProcess(t, "api", socialBin, with("AMQP_URL", c.dispatcherAMQP), "api")
	s.dispatcherEnv = with("AMQP_URL", c.dispatcherAMQP)
	s.dispatcher = testinfra.StartProcess(t, "dispatcher", socialBin, s.dispatcherEnv, "dispatcher")
	s.realtimeEnv = with("AMQP_URL", c.realtimeAMQP)
	s.realtime = testinfra.StartProcess(t, "realtime", socialBin, s.realtimeEnv, "realtime")
	s.apiURL = "http://" + s.api.Addr(t, "api")
	s.dispatcherURL = "http://" + s.dispatcher.Addr(t, "dispatcher")
	rt := s.realtime.Addr(t, "realtime")
	s.realtimeURL = "http://" + rt
	s.wsURL = "ws://" + rt + "/post/feed/posted"
	for _, u := range []string{s.apiURL, s.dispatcherURL, s.realtimeURL} {
		waitStatus(t, u+"/readyz", http.StatusOK, 60*time.Second)
	}
	return s
}

// brokerOf waits for the component's "connected" log line after line `from` and returns the
// redacted broker address it names.
func BrokerOf(t *testing.T, p *testinfra.Process, from int, msg string, timeout time.Duration) string {
	t.Helper()
	m := p.WaitLog(t, timeout, from, msg, func(m map[string]any) bool { return m["msg"] == msg })
	b, _ := m["broker"].(string)
	return b
}

// onPort reports whether a redacted AMQP address names port.
func onPort(addr string, port int) bool {
	return strings.Contains(addr, ":"+itoa(port)+"/")
}

// waitStatus polls url until it answers want, failing after timeout.
func waitStatus(t *testing.T, url string, want int, timeout time.Duration) {
	t.Helper()
	wait.For(t, timeout, "GET "+url+" = "+itoa(want), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == want
	})
}
