package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHostileSlowFeedReadersHoldBoundedMemory: one author has 1,000 posts of 10,000 `<`; ten
// followers ask for `GET /post/feed?limit=1000` and never read the answer (issue 12, finding 1:
// each such request held ~60 MB of the api until the client left, 1 GB for ten). The api runs as
// its own process, so its heap is measured alone.
//
// The bound: a feed response is at most FEED_PAGE_MAX_BYTES (the page ends early, with a Link to
// the next); while it is written the request holds at most that much post text plus one post's
// encoding (≤ 61 KB) and net/http's buffers, and no longer than HTTP_WRITE_TIMEOUT. Ten slow
// readers at 1 MiB may hold about 11 MiB; the test allows 48 MiB of heap growth (garbage not yet
// collected included) where the unbounded version grew by more than 600 MiB. After the write
// timeout (plus the idle timeout, for a response the kernel buffers took whole) the server has
// closed every one of those connections.
func TestHostileSlowFeedReadersHoldBoundedMemory(t *testing.T) {
	t.Parallel()
	const readers, budget = 10, 1 << 20
	s := newStack(t)
	env := s.env()
	// One reader holds all ten requests: the bound on a user's reads at once is raised past ten,
	// so it is the memory of ten that is measured (TestHostileFeedFloodLeavesOthersServed is that
	// bound's own test).
	for k, v := range map[string]string{"FEED_PAGE_MAX_BYTES": strconv.Itoa(budget), "REQUEST_TIMEOUT": "3s",
		"HTTP_WRITE_TIMEOUT": "6s", "HTTP_IDLE_TIMEOUT": "2s", "EXPENSIVE_READS_PER_USER": strconv.Itoa(readers)} {
		env[k] = v
	}
	proc, base := startProcess(t, "api", env)
	author, reader := signUp(t, base, "Author"), signUp(t, base, "Reader")
	follow(t, base, reader, author)
	s.db.Exec(t, `INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version)
		SELECT gen_random_uuid(), $1, repeat('<', 10000), now(), now(), 1 FROM generate_series(1, 1000)`, author.id)

	// One honest client reads the largest page whole: it is cut to the budget and says where the
	// next page starts.
	res, body := get(t, base+"/post/feed?limit=1000", reader.token)
	if len(body) > budget || res.Header.Get("Link") == "" || strings.Contains(string(body), `\u003c`) {
		t.Fatalf("largest page: %d bytes, Link %q, escaped %v; want ≤ %d bytes, a Link, `<` as is",
			len(body), res.Header.Get("Link"), strings.Contains(string(body), `\u003c`), budget)
	}
	next := regexp.MustCompile(`^</post/feed\?cursor=([A-Za-z0-9_-]+)&limit=1000>; rel="next"$`).FindStringSubmatch(res.Header.Get("Link"))
	if next == nil {
		t.Fatalf("Link %q does not name the next page by cursor", res.Header.Get("Link"))
	}
	res2, body2 := get(t, base+"/post/feed?limit=1000&cursor="+next[1], reader.token)
	if res2.StatusCode != http.StatusOK {
		t.Fatalf("next page: %d", res2.StatusCode)
	}
	// The next page goes on after the posts sent: none of them again.
	var first, second []struct{ ID string }
	if err := json.Unmarshal(body, &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body2, &second); err != nil {
		t.Fatal(err)
	}
	if len(second) == 0 || len(first)+len(second) > 1000 || slices.ContainsFunc(second, func(p struct{ ID string }) bool {
		return slices.ContainsFunc(first, func(q struct{ ID string }) bool { return q.ID == p.ID })
	}) {
		t.Fatalf("next page: %d posts after %d, or some again", len(second), len(first))
	}

	before := heapInuse(t, base)
	rssBefore := rss(t, proc.cmd.Process.Pid)
	conns := make([]net.Conn, readers)
	for i := range conns {
		conns[i] = dialNotReading(t, base)
		fmt.Fprintf(conns[i], "GET /post/feed?limit=1000 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer %s\r\n\r\n", reader.token)
	}
	// Sample while the readers hold their requests (well inside the write timeout).
	var peak, rssPeak int64
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		peak, rssPeak = max(peak, heapInuse(t, base)), max(rssPeak, rss(t, proc.cmd.Process.Pid))
	}
	t.Logf("%d slow readers of a %d-byte page: heap in use %d → %d MiB (peak), RSS %d → %d MiB",
		readers, len(body), before>>20, peak>>20, rssBefore>>20, rssPeak>>20)
	if grew := peak - before; grew > 48<<20 {
		t.Errorf("heap grew by %d MiB under %d slow readers, want ≤ 48 MiB", grew>>20, readers)
	}
	for i, c := range conns {
		// The client starts reading only now; the server must have given up on it already or
		// do so within the write timeout.
		if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
			t.Errorf("reader %d: %v, want the server to close the connection", i, err)
		}
	}
}

// dialNotReading connects with a small receive buffer and a read deadline far beyond the test's
// timeouts: the client reads nothing until the test says so.
func dialNotReading(t testing.TB, base string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

func get(t testing.TB, url, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

var heapInuseLine = regexp.MustCompile(`(?m)^go_memstats_heap_inuse_bytes ([0-9.e+]+)$`)

// heapInuse reads the api's heap in use from its /metrics.
func heapInuse(t testing.TB, base string) int64 {
	t.Helper()
	_, b := get(t, base+"/metrics", "")
	m := heapInuseLine.FindSubmatch(b)
	if m == nil {
		t.Fatal("no go_memstats_heap_inuse_bytes in /metrics")
	}
	f, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return int64(f)
}

// rss reads a process's resident set from /proc (reported beside the heap: it also counts the
// race detector's shadow memory when the tests run with -race).
func rss(t testing.TB, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
