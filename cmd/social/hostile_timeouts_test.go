package main

// The hostile-client suite (issue 12, docs/limits.md): each test plays a client that tries to hold
// the server's memory, connections or CPU, and checks the bound that stops it. Everything runs on
// loopback, bounded in time and count.

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// dialRaw opens a plain TCP connection to base ("http://host:port") for a client that speaks
// HTTP by hand, badly on purpose.
func dialRaw(t testing.TB, base string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// trickle writes b one byte every interval until the connection refuses a write or stop closes;
// it returns at once and reports into done when it ends.
func trickle(c net.Conn, b []byte, interval time.Duration, stop <-chan struct{}) (done <-chan struct{}) {
	d := make(chan struct{})
	go func() {
		defer close(d)
		for i := range b {
			select {
			case <-stop:
				return
			case <-time.After(interval):
			}
			if _, err := c.Write(b[i : i+1]); err != nil {
				return
			}
		}
	}()
	return d
}

// closedWithin waits for the server to end the connection (EOF or reset) and returns what it
// sent meanwhile and how long it took; it fails the test if the connection is still open after max.
func closedWithin(t testing.TB, c net.Conn, max time.Duration) (sent string, took time.Duration) {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(max))
	var got strings.Builder
	_, err := io.Copy(&got, c)
	took = time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s (server sent %q)", max, got.String())
	}
	return got.String(), took
}

// TestHostileSlowBodyIsCut: a POST /login that announces 1,000,000 bytes and sends one every
// 200 ms (issue 12, finding 4: such requests stayed open for as long as the client liked) is
// answered 408 and closed once HTTP_READ_TIMEOUT has passed since its first byte.
func TestHostileSlowBodyIsCut(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.extra = map[string]string{"HTTP_READ_TIMEOUT": "1s", "HTTP_READ_HEADER_TIMEOUT": "1s"}
	base, _ := s.start(t, "api")
	c := dialRaw(t, base)
	start := time.Now()
	if _, err := io.WriteString(c, "POST /login HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"+
		"Content-Length: 1000000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	trickle(c, []byte(strings.Repeat(" ", 1000)), 200*time.Millisecond, stop)
	sent, _ := closedWithin(t, c, 5*time.Second)
	took := time.Since(start)
	if !strings.HasPrefix(sent, "HTTP/1.1 408 ") {
		t.Errorf("server answered %q, want 408", firstLine(sent))
	}
	if took > 2500*time.Millisecond {
		t.Errorf("slow body held the connection for %s, want about HTTP_READ_TIMEOUT (1s)", took)
	}
	t.Logf("slow body cut after %s: %s", took.Round(time.Millisecond), firstLine(sent))
}

// TestHostileSlowHeadersAreCut: headers sent one byte every 100 ms (slowloris) lose the
// connection once HTTP_READ_HEADER_TIMEOUT has passed.
func TestHostileSlowHeadersAreCut(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.extra = map[string]string{"HTTP_READ_HEADER_TIMEOUT": "500ms"}
	base, _ := s.start(t, "api")
	c := dialRaw(t, base)
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	trickle(c, []byte("GET /healthz HTTP/1.1\r\nHost: api\r\nX-Slow: "+strings.Repeat("a", 1000)), 100*time.Millisecond, stop)
	closedWithin(t, c, 5*time.Second)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("slow headers held the connection for %s, want about 500ms", took)
	}
}

// TestHostileIdleConnectionIsClosed: a keep-alive connection that sends nothing after its first
// request is closed after HTTP_IDLE_TIMEOUT.
func TestHostileIdleConnectionIsClosed(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.extra = map[string]string{"HTTP_IDLE_TIMEOUT": "500ms"}
	base, _ := s.start(t, "api")
	c := dialRaw(t, base)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if _, took := closedWithin(t, c, 5*time.Second); took > 2*time.Second {
		t.Errorf("idle connection kept for %s, want about 500ms", took)
	}
}

// TestHostileServerDeadlinesSpareWebsockets: the read and write timeouts are connection deadlines
// in net/http; a websocket must outlive them (net/http clears them when it hands the connection
// over), on the realtime server and on `all`'s shared one.
func TestHostileServerDeadlinesSpareWebsockets(t *testing.T) {
	t.Parallel()
	short := map[string]string{"REQUEST_TIMEOUT": "200ms", "HTTP_READ_HEADER_TIMEOUT": "300ms",
		"HTTP_READ_TIMEOUT": "300ms", "HTTP_WRITE_TIMEOUT": "400ms", "HTTP_IDLE_TIMEOUT": "400ms"}
	for _, cmd := range []string{"realtime", "all"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			s := newStack(t)
			s.extra = short
			var api, ws string
			if cmd == "all" {
				api, _ = s.start(t, "all")
				ws = api
			} else {
				api, _ = s.start(t, "api")
				ws, _ = s.start(t, "realtime")
				s.startDispatcher(t)
			}
			author, reader := signUp(t, api, "Author"), signUp(t, api, "Reader")
			follow(t, api, reader, author)
			sock := dialFeed(t, ws, reader, "reader")
			time.Sleep(time.Second) // past every deadline the server sets
			id := post(t, api, author, "after the deadlines")
			if f := sock.next(20 * time.Second); f.PostID != id {
				t.Fatalf("got %+v, want the post", f)
			}
		})
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}
