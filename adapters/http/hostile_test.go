package http_test

// The HTTP adapter's share of the hostile-client suite (issue 12, docs/limits.md); the server's
// timeouts and the memory bound are tested on the real process in cmd/social/hostile_*_test.go.

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	httpapi "github.com/socialnet/social/adapters/http"
)

// chunked sends body with Transfer-Encoding: chunked (no Content-Length): the limit must hold
// for a body that does not announce its size.
func (a *testAPI) chunked(method, path, token string, body io.Reader) response {
	a.t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, struct{ io.Reader }{body}) // hides the length
	if err != nil || req.ContentLength != 0 {
		a.t.Fatalf("request of unknown length: %v, length %d", err, req.ContentLength)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Body: out}
}

// TestHostileChunkedBodyOverLimitIs413: a chunked body over 1 MiB was answered 400 "cannot read
// request body" (echo's limit error is not an *http.MaxBytesError); it is 413 like an announced one.
func TestHostileChunkedBodyOverLimitIs413(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	u := api.register("Chunky", "Sender")
	big := `{"text":"` + strings.Repeat("a", 1<<20) + `"}`
	expectError(t, api.chunked("POST", "/post/create", u.Token, strings.NewReader(big)), http.StatusRequestEntityTooLarge)
	expectError(t, api.chunked("POST", "/login", "", strings.NewReader(big)), http.StatusRequestEntityTooLarge)
	// Under the limit, chunked is fine.
	if res := api.chunked("POST", "/post/create", u.Token, strings.NewReader(`{"text":"small"}`)); res.Status != http.StatusOK {
		t.Fatalf("small chunked post: %d %s", res.Status, res.Body)
	}
}

// TestHostileNULAndBlankTextsAre400: "\u0000" in a post was a 500 (SQLSTATE 22P05) and an ERROR
// log line, and failed every post batched with it; whitespace-only text made a blank post. Both
// are 400 now, while the good posts of the same burst all commit.
func TestHostileNULAndBlankTextsAre400(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t, func(c *httpapi.Config) { c.PostsPerUser = 100 }) // 33 good posts from one user
	u := api.register("Nul", "Sender")
	bad := []string{`{"text":"a\u0000b"}`, `{"text":"\u0000"}`, `{"text":" \t\n\u00a0\u3000"}`}
	for _, body := range bad {
		expectError(t, api.do("POST", "/post/create", u.Token, body), http.StatusBadRequest)
	}
	id := api.post(u, "fine")
	for _, body := range bad {
		expectError(t, api.do("PUT", "/post/update", u.Token, strings.Replace(body, `{`, `{"id":"`+id+`",`, 1)), http.StatusBadRequest)
	}
	var wg sync.WaitGroup
	statuses := make([]int, 64)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := `{"text":"good ` + strconv.Itoa(i) + `"}`
			if i%2 == 0 {
				body = bad[0]
			}
			statuses[i] = api.do("POST", "/post/create", u.Token, body).Status
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if want := map[bool]int{true: 400, false: 200}[i%2 == 0]; s != want {
			t.Errorf("post %d of the burst: %d, want %d", i, s, want)
		}
	}
	if n := api.db.Count(t, "posts"); n != 33 {
		t.Errorf("%d posts, want 33", n)
	}
}

// TestHostileReadyzNamesNoInternals: /readyz printed the database's user, name, host and port
// when the database was down.
func TestHostileReadyzNamesNoInternals(t *testing.T) {
	t.Parallel()
	api, _ := newAPIOn(t, "postgres://secretuser:secretpw@127.0.0.1:1/secretdb?sslmode=disable", time.Second)
	res := api.do("GET", "/readyz", "", nil)
	if res.Status != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("readyz: %d, Retry-After %q", res.Status, res.Header.Get("Retry-After"))
	}
	for _, secret := range []string{"secretuser", "secretpw", "secretdb", "127.0.0.1", "dial", "5432"} {
		if strings.Contains(string(res.Body), secret) {
			t.Errorf("readyz says %q: %s", secret, res.Body)
		}
	}
}

// TestHostileRequestIDIsOursUnlessWellFormed: a client's X-Request-Id (500 KB were tried) was
// echoed into headers, bodies and logs; only 1..64 characters of [A-Za-z0-9._-] are kept.
func TestHostileRequestIDIsOursUnlessWellFormed(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	for id, kept := range map[string]bool{
		"abc.DEF_123-x": true, strings.Repeat("a", 64): true, "0123456789abcdef0123456789abcdef": true,
		strings.Repeat("a", 65): false, strings.Repeat("x", 500<<10): false, "has space": false,
		"<script>": false, "ünï": false, "a\"b": false,
	} {
		res := api.doWith("GET", "/post/get/not-a-uuid", "", nil, map[string]string{"X-Request-Id": id})
		var e struct {
			RequestID string `json:"request_id"`
		}
		res.JSON(t, &e)
		got := res.Header.Get("X-Request-Id")
		if kept && (got != id || e.RequestID != id) || !kept && (got == id || len(got) != 36 || e.RequestID != got) {
			t.Errorf("X-Request-Id %.40q: answered %.40q (body %.40q), want it kept: %v", id, got, e.RequestID, kept)
		}
	}
}
