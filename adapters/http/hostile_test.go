package http_test

// The HTTP adapter's share of the hostile-client suite (issue 12, docs/limits.md); the server's
// timeouts and the memory bound are tested on the real process in cmd/social/hostile_*_test.go.

import (
	"io"
	"net/http"
	"strings"
	"testing"
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
