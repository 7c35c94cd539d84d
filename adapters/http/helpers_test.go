package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socialnet/social/adapters/auth"
	httpapi "github.com/socialnet/social/adapters/http"
	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
)

const testSecret = "test-secret-test-secret-test-secret-0123"

// testAPI is the REST API on a fresh database behind a real HTTP server.
type testAPI struct {
	t      testing.TB
	db     *pgtest.DB
	srv    *httptest.Server
	api    *httpapi.Server
	tokens *auth.Tokens
}

// newTestAPI serves the API on a fresh database with the production defaults, changed by opts.
func newTestAPI(t testing.TB, opts ...func(*httpapi.Config)) *testAPI {
	t.Helper()
	db := pgtest.New(t)
	tokens, err := auth.NewTokens(testSecret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	passwords, err := auth.NewPasswords(4, 0) // bcrypt.MinCost: tests register many users
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.Config{
		Users:          postgres.NewUserService(db.Pool),
		Friends:        postgres.NewFriendService(db.Pool),
		Posts:          postgres.NewPostService(db.Pool),
		Dialogs:        postgres.NewDialogService(db.Pool),
		Tokens:         tokens,
		Passwords:      passwords,
		RequestTimeout: 2 * time.Second,
		Registerer:     prometheus.NewRegistry(),
		Ready:          func(ctx context.Context) error { return db.Pool.Ping(ctx) },
	}
	for _, o := range opts {
		o(&cfg)
	}
	api := httpapi.NewServer(cfg)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &testAPI{t: t, db: db, srv: srv, api: api, tokens: tokens}
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v or fails the test.
func (r response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
}

// do sends a request; body is sent as is when it is a string or []byte, else JSON-encoded.
func (a *testAPI) do(method, path, token string, body any) response {
	a.t.Helper()
	return a.doWith(method, path, token, body, nil)
}

// doWith is do with more request headers.
func (a *testAPI) doWith(method, path, token string, body any, headers map[string]string) response {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, a.srv.URL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: out}
}

type user struct {
	ID    string
	Token string
}

// register creates a user named first/second and logs in.
func (a *testAPI) register(first, second string) user {
	a.t.Helper()
	res := a.do("POST", "/user/register", "", map[string]string{
		"first_name": first, "second_name": second, "birthdate": "1990-05-17",
		"biography": "bio of " + first, "city": "Moscow", "password": "password-" + first,
	})
	if res.Status != 200 {
		a.t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	var reg struct {
		UserID string `json:"user_id"`
	}
	res.JSON(a.t, &reg)
	res = a.do("POST", "/login", "", map[string]string{"id": reg.UserID, "password": "password-" + first})
	if res.Status != 200 {
		a.t.Fatalf("login: %d %s", res.Status, res.Body)
	}
	var login struct {
		Token string `json:"token"`
	}
	res.JSON(a.t, &login)
	return user{ID: reg.UserID, Token: login.Token}
}

func (a *testAPI) post(u user, text string) string {
	a.t.Helper()
	res := a.do("POST", "/post/create", u.Token, map[string]string{"text": text})
	if res.Status != 200 {
		a.t.Fatalf("create post: %d %s", res.Status, res.Body)
	}
	var id string
	res.JSON(a.t, &id)
	return id
}

func (a *testAPI) follow(u, friend user) {
	a.t.Helper()
	if res := a.do("PUT", "/friend/set/"+friend.ID, u.Token, nil); res.Status != 200 {
		a.t.Fatalf("friend set: %d %s", res.Status, res.Body)
	}
}

// expectError checks status and the JSON error body of design.md §2.
func expectError(t testing.TB, res response, status int) {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status %d, want %d; body %s", res.Status, status, res.Body)
	}
	var e struct {
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
		Code      int    `json:"code"`
	}
	res.JSON(t, &e)
	if e.Message == "" || e.RequestID == "" || e.Code != status {
		t.Fatalf("error body %s: want message, request_id and code %d", res.Body, status)
	}
}
