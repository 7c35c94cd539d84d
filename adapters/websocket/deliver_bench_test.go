package websocket_test

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/auth"
	ws "github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/internal/wait"
)

// BenchmarkHubDeliver is the realtime's side of one post: Hub.Deliver hands a frame for n users,
// one open socket each, and the operation ends when every socket's client has read it (decoding
// the frame's meta, finding the sockets, queueing, the writers' write(2) on loopback). The
// clients are raw readers that only count websocket messages, so the hub's work dominates; they
// share the cores, and the allocations counted are the process's, theirs included (none per
// message). The hub runs as cmd/social builds it, on fake presence and resume ports (no database).
func BenchmarkHubDeliver(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run("sockets="+strconv.Itoa(n), func(b *testing.B) { benchmarkHubDeliver(b, n) })
	}
}

// benchHub serves a hub as cmd/social builds it, on fake presence and resume ports, for up to
// sockets sockets from one address (no pings meanwhile); the server closes with the benchmark.
func benchHub(b *testing.B, sockets int) (*ws.Hub, *auth.Tokens, *httptest.Server) {
	tokens, err := auth.NewTokens(strings.Repeat("s", 32), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	// Logged as the realtime logs (JSON, info and above), to nowhere: a handler that formats
	// is what a connect pays for its log context.
	hub, err := ws.NewHub(ws.Config{Tokens: tokens, Presence: fakePresence{}, Missed: &fakeMissed{},
		MaxSocketsPerAddress: sockets, PingInterval: time.Hour, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(hub)
	b.Cleanup(srv.Close)
	return hub, tokens, srv
}

func benchmarkHubDeliver(b *testing.B, n int) {
	hub, tokens, srv := benchHub(b, n)
	// The reader that counts the message an iteration waits for (want) says so on done.
	var received, want atomic.Int64
	done := make(chan struct{}, 1)
	users := make([]string, n)
	for i := range users {
		users[i] = uuid.NewString()
		conn, br := rawSocket(b, srv.Listener.Addr().String(), tokens, users[i])
		defer conn.Close()
		go countMessages(br, func() {
			if received.Add(1) == want.Load() {
				done <- struct{}{}
			}
		})
	}
	wait.For(b, time.Minute, fmt.Sprintf("%d sockets registered", n), func() bool { return hub.Connections() >= n })
	// A frame as the dispatcher encodes it (~250 bytes); only its position changes.
	head := []byte(`{"postId":"01937a1e-0000-7000-8000-000000000000","postText":"a post of about a hundred characters, which is what most posts on a social network look like ok","author_user_id":"01937a1e-0000-7000-8000-000000000001","type":"post.created","position":`)
	tail := []byte(`,"created_at":"2026-12-06T10:00:00.000000Z"}`)
	var pos int64
	b.ReportAllocs()
	for b.Loop() {
		pos++
		body := append(strconv.AppendInt(append(make([]byte, 0, len(head)+len(tail)+20), head...), pos, 10), tail...)
		want.Add(int64(n))
		deliver(b, hub, body, users...)
		select {
		case <-done:
		case <-time.After(time.Minute):
			b.Fatalf("%d of %d messages read after a minute", received.Load(), want.Load())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(want.Load()), "ns/delivery")
}

// rawSocket opens a websocket by hand for user and returns the connection and its reader past
// the 101.
func rawSocket(b *testing.B, addr string, tokens *auth.Tokens, user string) (net.Conn, *bufio.Reader) {
	b.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := tokens.Issue(user)
	if err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	fmt.Fprintf(conn, "GET /post/feed/posted HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\nAuthorization: Bearer %s\r\n\r\n", base64.StdEncoding.EncodeToString(key), tok)
	br := bufio.NewReaderSize(conn, 64<<10)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		b.Fatalf("upgrade: %v %v", res, err)
	}
	return conn, br
}

// countMessages reads server frames (unmasked) until the connection ends, calling read for each
// message that ends (FIN) with its text or continuation frame; everything else is skipped.
func countMessages(br *bufio.Reader, read func()) {
	var h [8]byte
	for {
		if _, err := io.ReadFull(br, h[:2]); err != nil {
			return
		}
		fin, opcode, size := h[0]&0x80 != 0, h[0]&0x0f, uint64(h[1]&0x7f)
		switch size {
		case 126:
			if _, err := io.ReadFull(br, h[:2]); err != nil {
				return
			}
			size = uint64(binary.BigEndian.Uint16(h[:2]))
		case 127:
			if _, err := io.ReadFull(br, h[:8]); err != nil {
				return
			}
			size = binary.BigEndian.Uint64(h[:8])
		}
		if _, err := br.Discard(int(size)); err != nil {
			return
		}
		if fin && (opcode == 0 || opcode == 1) {
			read()
		}
	}
}

// BenchmarkHubDeliverBehindAFanout is another author's post right behind a big one: a frame for
// n sockets, then a frame for one other socket; the operation ends when that one socket's
// client has read its frame (the big frame's writes may still go on; each iteration waits for
// them before the next, untimed). What it measures is how long a small delivery waits behind a
// large one in the hub.
func BenchmarkHubDeliverBehindAFanout(b *testing.B) {
	const n = 2000
	hub, tokens, srv := benchHub(b, n+1)
	var bigRead atomic.Int64
	bigDone := make(chan struct{}, 1)
	fans := make([]string, n)
	for i := range fans {
		fans[i] = uuid.NewString()
		conn, br := rawSocket(b, srv.Listener.Addr().String(), tokens, fans[i])
		defer conn.Close()
		go countMessages(br, func() {
			if bigRead.Add(1)%n == 0 {
				bigDone <- struct{}{}
			}
		})
	}
	other := uuid.NewString()
	conn, br := rawSocket(b, srv.Listener.Addr().String(), tokens, other)
	defer conn.Close()
	smallDone := make(chan struct{}, 1)
	go countMessages(br, func() { smallDone <- struct{}{} })
	wait.For(b, time.Minute, fmt.Sprintf("%d sockets registered", n+1), func() bool { return hub.Connections() >= n+1 })
	frame := func(pos int64) []byte {
		return fmt.Appendf(nil, `{"postId":"01937a1e-0000-7000-8000-000000000000","postText":"a post","author_user_id":"01937a1e-0000-7000-8000-000000000001","type":"post.created","position":%d,"created_at":"2026-12-06T10:00:00.000000Z"}`, pos)
	}
	var pos int64
	for b.Loop() {
		pos += 2
		deliver(b, hub, frame(pos-1), fans...)
		deliver(b, hub, frame(pos), other)
		select {
		case <-smallDone:
		case <-time.After(time.Minute):
			b.Fatal("the small frame did not arrive within a minute")
		}
		b.StopTimer()
		select {
		case <-bigDone:
		case <-time.After(time.Minute):
			b.Fatal("the big frame did not reach every socket within a minute")
		}
		b.StartTimer()
	}
}
