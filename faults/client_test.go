//go:build faults

package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func itoa(n int) string { return strconv.Itoa(n) }

// apiClient speaks the REST API of design.md §2.
type apiClient struct {
	t    *testing.T
	base string
	http *http.Client
}

func newAPIClient(t *testing.T, base string) *apiClient {
	return &apiClient{t: t, base: base, http: &http.Client{Timeout: 30 * time.Second}}
}

type reply struct {
	status     int
	body       []byte
	retryAfter string
	took       time.Duration
}

// do sends one request; transport errors fail the test (the API must always answer).
func (a *apiClient) do(method, path, token string, body any) reply {
	a.t.Helper()
	r, err := a.try(method, path, token, body)
	if err != nil {
		a.t.Fatal(err)
	}
	return r
}

// try is do for goroutines other than the test's: it returns transport errors.
func (a *apiClient) try(method, path, token string, body any) (reply, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	res, err := a.http.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{status: res.StatusCode, body: b, retryAfter: res.Header.Get("Retry-After"), took: time.Since(start)}, nil
}

func (a *apiClient) must(r reply, what string) reply {
	a.t.Helper()
	if r.status != http.StatusOK {
		a.t.Fatalf("%s: status %d: %s", what, r.status, r.body)
	}
	return r
}

type user struct{ id, token string }

// register registers and logs in a user.
func (a *apiClient) register(name string) user {
	a.t.Helper()
	r := a.must(a.do("POST", "/user/register", "", map[string]string{"first_name": name, "second_name": "Faults",
		"birthdate": "1990-01-02", "biography": "", "city": "", "password": "password-" + name}), "register")
	var reg struct {
		UserID string `json:"user_id"`
	}
	_ = json.Unmarshal(r.body, &reg)
	r = a.must(a.do("POST", "/login", "", map[string]string{"id": reg.UserID, "password": "password-" + name}), "login")
	var login struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(r.body, &login)
	return user{id: reg.UserID, token: login.Token}
}

// follow makes u follow author (u sets author as a friend).
func (a *apiClient) follow(u, author user) {
	a.t.Helper()
	a.must(a.do("PUT", "/friend/set/"+author.id, u.token, nil), "friend/set")
}

// post creates a post and returns the reply and, on 200, the post id.
func (a *apiClient) post(u user, text string) (reply, string) {
	a.t.Helper()
	r := a.do("POST", "/post/create", u.token, map[string]string{"text": text})
	var id string
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &id); err != nil {
			a.t.Fatalf("post id %s: %v", r.body, err)
		}
	}
	return r, id
}

type feedFrame struct {
	PostID   string `json:"postId"`
	PostText string `json:"postText"`
	Type     string `json:"type"`
	Position int64  `json:"position"`
}

// feed is a browser-like websocket client: it stays connected, and whenever its socket is closed
// (1012 after a broker failover, 1001 on shutdown, a broken connection) it reconnects with
// ?since=<highest position seen>, as web/ does. It dedupes frames by post id and event type.
type feed struct {
	t     *testing.T
	urls  []string // tried in turn: a reconnect that fails moves to the next (another instance)
	next  int
	token string

	mu         sync.Mutex
	got        map[string]int    // postId|type → copies received
	texts      map[string]string // postId|type → postText
	maxPos     int64
	connects   int
	closeCodes []websocket.StatusCode
	changed    chan struct{}
	// frames counts every frame received; connPos is the last position on the current
	// connection, and disorder records frames whose position did not exceed it: each socket's
	// stream (resume, then live) must be in strictly increasing position order (design.md §3).
	frames   int
	connPos  int64
	disorder []string
}

func openFeed(t *testing.T, ctx context.Context, url string, u user) *feed {
	return openFeedOn(t, ctx, []string{url}, u)
}

// openFeedOn is openFeed with several instances' URLs, as behind a gateway that skips a dead one.
func openFeedOn(t *testing.T, ctx context.Context, urls []string, u user) *feed {
	f := &feed{t: t, urls: urls, token: u.token, got: map[string]int{}, texts: map[string]string{}, changed: make(chan struct{})}
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(ctx)
	connected := make(chan struct{})
	go func() { defer close(done); f.run(ctx, connected) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-connected:
	case <-time.After(30 * time.Second):
		t.Fatalf("feed of %s did not connect within 30s", u.id)
	}
	return f
}

func (f *feed) run(ctx context.Context, connected chan struct{}) {
	backoff := 50 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		f.mu.Lock()
		url := f.urls[f.next%len(f.urls)]
		if !first {
			url += "?since=" + strconv.FormatInt(f.maxPos, 10)
		}
		f.mu.Unlock()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + f.token}}})
		cancel()
		if err != nil {
			f.mu.Lock()
			f.next++
			f.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		f.mu.Lock()
		f.connects++
		f.connPos = 0
		f.mu.Unlock()
		if first {
			first = false
			close(connected)
		}
		err = f.read(ctx, c)
		c.CloseNow()
		f.mu.Lock()
		f.closeCodes = append(f.closeCodes, websocket.CloseStatus(err))
		f.mu.Unlock()
	}
}

func (f *feed) read(ctx context.Context, c *websocket.Conn) error {
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return err
		}
		var fr feedFrame
		if err := json.Unmarshal(b, &fr); err != nil {
			return fmt.Errorf("frame %s: %w", b, err)
		}
		f.mu.Lock()
		f.frames++
		if fr.Position <= f.connPos {
			f.disorder = append(f.disorder, fmt.Sprintf("connection %d: position %d after %d (%s)", f.connects, fr.Position, f.connPos, fr.PostID))
		}
		f.connPos = fr.Position
		f.got[fr.PostID+"|"+fr.Type]++
		f.texts[fr.PostID+"|"+fr.Type] = fr.PostText
		f.maxPos = max(f.maxPos, fr.Position)
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
	}
}

// waitFor waits until every post in ids arrived as post.created, failing after timeout.
func (f *feed) waitFor(ids []string, timeout time.Duration) {
	f.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		var missing []string
		for _, id := range ids {
			if f.got[id+"|post.created"] == 0 {
				missing = append(missing, id)
			}
		}
		changed := f.changed
		f.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			f.t.Fatalf("feed missing %d of %d posts after %s (e.g. %s); connects %d, close codes %v",
				len(missing), len(ids), timeout, missing[0], f.connectCount(), f.codes())
		}
	}
}

// exactlyOnce checks that the deduped set of created posts is exactly ids (nothing foreign) and
// returns how many raw duplicates dedupe removed. A frame whose text is in ambiguous is allowed
// too: it is a post whose request was answered 503 after the request timeout, although the
// database went on to commit it (see TestDatabaseOutageAnswers503AndRecovers).
func (f *feed) exactlyOnce(ids []string, ambiguous ...string) (duplicates, ambiguousSeen int) {
	f.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id+"|post.created"] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, n := range f.got {
		duplicates += n - 1
		if want[k] {
			continue
		}
		if slices.Contains(ambiguous, f.texts[k]) {
			ambiguousSeen++
			continue
		}
		f.t.Errorf("unexpected frame %s (%q)", k, f.texts[k])
	}
	if len(f.got)-ambiguousSeen != len(want) {
		f.t.Errorf("deduped frames %d, want %d", len(f.got)-ambiguousSeen, len(want))
	}
	return duplicates, ambiguousSeen
}

// inOrder fails the test if any connection's frames went backwards or repeated a position.
func (f *feed) inOrder() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, d := range f.disorder {
		if i == 5 {
			f.t.Errorf("... and %d more frames out of position order", len(f.disorder)-5)
			break
		}
		f.t.Errorf("frame out of position order: %s", d)
	}
}

// frameCount is how many frames arrived (duplicates included).
func (f *feed) frameCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.frames
}

func (f *feed) connectCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connects
}

func (f *feed) codes() []websocket.StatusCode {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]websocket.StatusCode(nil), f.closeCodes...)
}

// poster creates posts one after another until stopped, like a user who keeps publishing while
// the infrastructure fails under them. Every post must be answered 200.
type poster struct {
	mu      sync.Mutex
	ids     []string
	errs    []error
	slowest time.Duration
	cancel  context.CancelFunc
	done    chan struct{}
}

func startPoster(t *testing.T, api *apiClient, author user, every time.Duration) *poster {
	ctx, cancel := context.WithCancel(context.Background())
	p := &poster{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			r, err := api.try("POST", "/post/create", author.token, map[string]string{"text": "post " + itoa(n)})
			var id string
			if err == nil && r.status != http.StatusOK {
				err = fmt.Errorf("post %d: status %d: %s", n, r.status, r.body)
			}
			if err == nil {
				err = json.Unmarshal(r.body, &id)
			}
			p.mu.Lock()
			if err != nil {
				p.errs = append(p.errs, err)
			} else {
				p.ids = append(p.ids, id)
			}
			p.slowest = max(p.slowest, r.took)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-p.done })
	return p
}

// count is how many posts were created so far.
func (p *poster) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ids)
}

// stop ends posting and returns the ids created; any failed request fails the test.
func (p *poster) stop(t *testing.T) []string {
	t.Helper()
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, err := range p.errs {
		if i == 5 {
			t.Errorf("... and %d more failed posts", len(p.errs)-5)
			break
		}
		t.Errorf("post failed: %v", err)
	}
	return append([]string(nil), p.ids...)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
