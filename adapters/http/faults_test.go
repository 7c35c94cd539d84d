package http_test

import (
	"context"
	"net"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socialnet/social/adapters/auth"
	httpapi "github.com/socialnet/social/adapters/http"
	"github.com/socialnet/social/adapters/postgres"
)

// TestPostCreateWritesEventAndOutboxAtomically makes the outbox insert fail and shows that the
// event and the post row are not stored either, and that the client is told (5xx).
func TestPostCreateWritesEventAndOutboxAtomically(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	u := api.register("Anna", "Author")
	api.db.Exec(t, `CREATE FUNCTION refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'outbox insert refused by test'; END $$`)
	api.db.Exec(t, `CREATE TRIGGER refuse_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_outbox()`)
	events := api.db.Count(t, "events")

	res := api.do("POST", "/post/create", u.Token, map[string]string{"text": "must not half-exist"})
	if res.Status < 500 {
		t.Fatalf("status %d, want 5xx: %s", res.Status, res.Body)
	}
	expectError(t, res, res.Status)
	if n := api.db.Count(t, "posts"); n != 0 {
		t.Errorf("posts = %d, want 0", n)
	}
	if n := api.db.Count(t, "events"); n != events {
		t.Errorf("events %d -> %d, want unchanged", events, n)
	}
	if n := api.db.Count(t, "outbox"); n != 0 {
		t.Errorf("outbox = %d, want 0", n)
	}

	// The same holds for update and delete, which use an explicit transaction.
	api.db.Exec(t, `ALTER TABLE outbox DISABLE TRIGGER refuse_outbox`)
	id := api.post(u, "v1")
	api.db.Exec(t, `ALTER TABLE outbox ENABLE TRIGGER refuse_outbox`)
	if res := api.do("PUT", "/post/update", u.Token, map[string]string{"id": id, "text": "v2"}); res.Status < 500 {
		t.Fatalf("update status %d, want 5xx", res.Status)
	}
	if res := api.do("PUT", "/post/delete/"+id, u.Token, nil); res.Status < 500 {
		t.Fatalf("delete status %d, want 5xx", res.Status)
	}
	if n := api.db.Count(t, "posts", "text = 'v1'", "version = 1"); n != 1 {
		t.Errorf("post changed although its outbox row was refused")
	}
	if n := api.db.Count(t, "events", "aggregate_id = '"+id+"'"); n != 1 {
		t.Errorf("post events = %d, want 1 (created only)", n)
	}
}

// newAPIOn builds the API on a database URL that may be unreachable.
func newAPIOn(t *testing.T, databaseURL string, timeout time.Duration) (*testAPI, *auth.Tokens) {
	t.Helper()
	ctx := context.Background()
	pool, err := postgres.NewPool(ctx, databaseURL, postgres.PoolConfig{MaxConns: 4, ConnectTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	tokens, _ := auth.NewTokens(testSecret, time.Hour)
	passwords, _ := auth.NewPasswords(4, 0)
	api := httpapi.NewServer(httpapi.Config{
		Users: postgres.NewUserService(pool), Friends: postgres.NewFriendService(pool), Posts: postgres.NewPostService(pool),
		Dialogs: postgres.NewDialogService(pool),
		Tokens:  tokens, Passwords: passwords, RequestTimeout: timeout, Registerer: prometheus.NewRegistry(),
		Ready: func(ctx context.Context) error { return pool.Ping(ctx) },
	})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &testAPI{t: t, srv: srv, api: api, tokens: tokens}, tokens
}

// TestDatabaseDownAnswers503 points the API at a port where nothing listens, and at a server that
// accepts connections but never answers: both must give 503 with Retry-After within the request
// timeout, never a hang.
func TestDatabaseDownAnswers503(t *testing.T) {
	t.Parallel()
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close() // nothing listens there now

	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never speaks
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn // closed after the test; the goroutine ends when silent is closed
	var mu sync.Mutex
	t.Cleanup(func() {
		silent.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()

	for name, addr := range map[string]string{"connection refused": refusedAddr, "server silent": silent.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const timeout = 1500 * time.Millisecond
			api, tokens := newAPIOn(t, "postgres://postgres@"+addr+"/social?sslmode=disable", timeout)
			token, _ := tokens.Issue(unknownID)
			for _, r := range []struct{ method, path, token, body string }{
				{"POST", "/post/create", token, `{"text":"hello"}`},
				{"GET", "/post/get/" + unknownID, "", ""},
				{"GET", "/post/feed", token, ""},
				{"POST", "/dialog/" + otherID + "/send", token, `{"text":"hello"}`},
				{"GET", "/dialog/" + otherID + "/list", token, ""},
				{"POST", "/user/register", "", `{"first_name":"A","second_name":"B","birthdate":"2000-01-01","password":"12345678"}`},
			} {
				start := time.Now()
				var body any
				if r.body != "" {
					body = r.body
				}
				res := api.do(r.method, r.path, r.token, body)
				took := time.Since(start)
				expectError(t, res, 503)
				if res.Header.Get("Retry-After") == "" {
					t.Errorf("%s %s: 503 without Retry-After", r.method, r.path)
				}
				if took > timeout+time.Second {
					t.Errorf("%s %s took %v, want about the request timeout %v", r.method, r.path, took, timeout)
				}
			}
			res := api.do("GET", "/readyz", "", nil)
			if res.Status != 503 {
				t.Errorf("/readyz = %d, want 503", res.Status)
			}
			if res := api.do("GET", "/healthz", "", nil); res.Status != 200 {
				t.Errorf("/healthz = %d, want 200 (the process is alive)", res.Status)
			}
		})
	}
}
