package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/internal/wait"
)

// stack is one test's database and exchange, shared by every process started on it.
type stack struct {
	db       *pgtest.DB
	exchange string
	extra    map[string]string // more environment for every process
}

func newStack(t testing.TB) *stack {
	t.Helper()
	return &stack{db: pgtest.New(t), exchange: amqptest.Exchange(t, "")}
}

func (s *stack) env() map[string]string {
	env := map[string]string{"JWT_SECRET": testSecret, "DATABASE_URL": s.db.URL, "AMQP_URL": amqptest.URL(),
		"AMQP_EXCHANGE": s.exchange, "HTTP_ADDR": "127.0.0.1:0", "WS_ADDR": "127.0.0.1:0", "DISPATCHER_ADDR": "127.0.0.1:0", "LOG_LEVEL": "warn",
		"BCRYPT_COST": "4"}
	for k, v := range s.extra {
		env[k] = v
	}
	return env
}

// start runs `social <cmd>` until the test ends (or stop is called) and returns its base URL
// once it answers /readyz.
func (s *stack) start(t testing.TB, cmd string) (base string, stop func()) {
	t.Helper()
	addrs := make(chan net.Addr, 4)
	a, _ := newTestApp(t)
	a.onListen = func(_ string, addr net.Addr) { addrs <- addr }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, []string{cmd}, s.env()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("social %s: %v", cmd, err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("social %s did not stop", cmd)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case addr := <-addrs:
		base = "http://" + addr.String()
	case err := <-done:
		t.Fatalf("social %s: %v", cmd, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("social %s did not listen", cmd)
	}
	wait.For(t, 20*time.Second, "social "+cmd+" ready", func() bool { return httpOK(base + "/readyz") })
	return base, stop
}

// startDispatcher runs `social dispatcher` on the stack: the relay as production wires it.
func (s *stack) startDispatcher(t testing.TB) {
	t.Helper()
	s.start(t, "dispatcher")
}

// user is a registered, logged-in user of the REST API.
type user struct {
	id, token string
}

func call(t testing.TB, method, url, token string, body any, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
}

func signUp(t testing.TB, api, name string) user {
	t.Helper()
	var reg struct {
		UserID string `json:"user_id"`
	}
	call(t, "POST", api+"/user/register", "", map[string]string{"first_name": name, "second_name": "Test",
		"birthdate": "1990-01-02", "biography": "", "city": "Town", "password": "password1"}, &reg)
	var login struct {
		Token string `json:"token"`
	}
	call(t, "POST", api+"/login", "", map[string]string{"id": reg.UserID, "password": "password1"}, &login)
	return user{id: reg.UserID, token: login.Token}
}

func follow(t testing.TB, api string, who, whom user) {
	t.Helper()
	call(t, "PUT", api+"/friend/set/"+whom.id, who.token, nil, nil)
}

func post(t testing.TB, api string, u user, text string) string {
	t.Helper()
	var id string
	call(t, "POST", api+"/post/create", u.token, map[string]string{"text": text}, &id)
	return id
}

// feedSocket is a websocket client of /post/feed/posted collecting frames.
type feedSocket struct {
	t      testing.TB
	name   string
	c      *websocket.Conn
	frames chan domain.FeedFrame
	done   chan struct{}
	err    error
}

func dialFeed(t testing.TB, base string, u user, name string) *feedSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(base, "http") + wsPath
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"bearer", u.token}})
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	s := &feedSocket{t: t, name: name, c: c, frames: make(chan domain.FeedFrame, 100), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				s.err = err
				return
			}
			var f domain.FeedFrame
			if err := json.Unmarshal(b, &f); err != nil {
				t.Errorf("%s: bad frame %s", name, b)
				continue
			}
			s.frames <- f
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return s
}

func (s *feedSocket) next(d time.Duration) domain.FeedFrame {
	s.t.Helper()
	select {
	case f := <-s.frames:
		return f
	case <-time.After(d):
		s.t.Fatalf("%s: no frame within %s", s.name, d)
	}
	return domain.FeedFrame{}
}

func (s *feedSocket) none() {
	s.t.Helper()
	select {
	case f := <-s.frames:
		s.t.Fatalf("%s got a frame that was not for it: %+v", s.name, f)
	default:
	}
}

func (s *feedSocket) closeStatus(d time.Duration) websocket.StatusCode {
	s.t.Helper()
	select {
	case <-s.done:
		return websocket.CloseStatus(s.err)
	case <-time.After(d):
		s.t.Fatalf("%s still open after %s", s.name, d)
	}
	return 0
}

func (s *feedSocket) String() string { return fmt.Sprintf("socket %s", s.name) }
