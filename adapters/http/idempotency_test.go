package http_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/postgres"
)

// createWithKey posts text under an Idempotency-Key.
func (a *testAPI) createWithKey(u user, key, text string) response {
	a.t.Helper()
	return a.doWith("POST", "/post/create", u.Token, map[string]string{"text": text}, map[string]string{"Idempotency-Key": key})
}

func (a *testAPI) expectCounts(posts, events, outbox int) {
	a.t.Helper()
	if p, e, o := a.db.Count(a.t, "posts"), a.db.Count(a.t, "events", "type = 'post.created'"), a.db.Count(a.t, "outbox"); p != posts || e != events || o != outbox {
		a.t.Fatalf("posts %d, post.created events %d, outbox rows %d; want %d, %d, %d", p, e, o, posts, events, outbox)
	}
}

// TestHostileIdempotencyKeyMakesOnePost: a client that retries /post/create (after a 503 or a cut
// connection) made the post twice (issue 12, finding 7). With the same Idempotency-Key, every
// retry by the same user, sequential or concurrent, answers the first post's id and creates
// nothing; the same key with another text is 409; another user's key is another key.
func TestHostileIdempotencyKeyMakesOnePost(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	u, other := api.register("Retry", "Er"), api.register("Other", "User")

	first := api.createWithKey(u, "retry-1", "only once")
	if first.Status != http.StatusOK {
		t.Fatalf("first call: %d %s", first.Status, first.Body)
	}
	if again := api.createWithKey(u, "retry-1", "only once"); again.Status != http.StatusOK || string(again.Body) != string(first.Body) {
		t.Fatalf("retry: %d %s, want 200 %s", again.Status, again.Body, first.Body)
	}
	api.expectCounts(1, 1, 1)

	// Concurrent calls with one key: they share group-commit transactions or wait on each other.
	var wg sync.WaitGroup
	answers := make([]response, 16)
	for i := range answers {
		wg.Add(1)
		go func() { defer wg.Done(); answers[i] = api.createWithKey(u, "burst", "sent sixteen times") }()
	}
	wg.Wait()
	for i, a := range answers {
		if a.Status != http.StatusOK || string(a.Body) != string(answers[0].Body) {
			t.Fatalf("concurrent call %d: %d %s, want 200 %s", i, a.Status, a.Body, answers[0].Body)
		}
	}
	api.expectCounts(2, 2, 2)

	expectError(t, api.createWithKey(u, "retry-1", "another text"), http.StatusConflict)
	if res := api.createWithKey(other, "retry-1", "only once"); res.Status != http.StatusOK || string(res.Body) == string(first.Body) {
		t.Fatalf("another user's key: %d %s, want a new post", res.Status, res.Body)
	}
	api.expectCounts(3, 3, 3)

	// A deleted post is still the answer to its key.
	var id string
	first.JSON(t, &id)
	if res := api.do("PUT", "/post/delete/"+id, u.Token, nil); res.Status != http.StatusOK {
		t.Fatalf("delete: %d", res.Status)
	}
	if res := api.createWithKey(u, "retry-1", "only once"); string(res.Body) != string(first.Body) {
		t.Fatalf("retry after delete: %d %s, want %s", res.Status, res.Body, first.Body)
	}

	// After 24 hours a key is new again.
	api.db.Exec(t, `UPDATE post_idempotency_keys SET created_at = created_at - interval '25 hours' WHERE key = 'retry-1'`)
	if res := api.createWithKey(u, "retry-1", "only once"); res.Status != http.StatusOK || string(res.Body) == string(first.Body) {
		t.Fatalf("key older than 24 h: %d %s, want a new post", res.Status, res.Body)
	}
	n, err := postgres.NewIdempotencyKeys(api.db.Pool).Purge(context.Background(), time.Now().Add(23*time.Hour))
	if err != nil || n != 1 { // "burst" is 23 h from expiry then; the other user's key too
		t.Fatalf("purge 23 h later: %d, %v; want the one key past 24 h", n, err)
	}
}

func TestHostileIdempotencyKeyMustBeWellFormed(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	u := api.register("Key", "Maker")
	for _, key := range []string{"", strings.Repeat("k", 65), "has space", "dot.ted", "ключ", "a,b"} {
		expectError(t, api.createWithKey(u, key, "text"), http.StatusBadRequest)
	}
	if res := api.createWithKey(u, strings.Repeat("K", 64)+"", "text"); res.Status != http.StatusOK {
		t.Fatalf("64-character key: %d %s", res.Status, res.Body)
	}
	api.expectCounts(1, 1, 1)
}

// TestIdempotencyKeyIsStoredInThePostsTransaction: when the post's transaction fails, its key is
// not kept either, so the retry creates the post (and only once).
func TestIdempotencyKeyIsStoredInThePostsTransaction(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	u := api.register("Anna", "Author")
	api.db.Exec(t, `CREATE FUNCTION refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'outbox insert refused by test'; END $$`)
	api.db.Exec(t, `CREATE TRIGGER refuse_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_outbox()`)
	if res := api.createWithKey(u, "k1", "must not half-exist"); res.Status < 500 {
		t.Fatalf("status %d, want 5xx", res.Status)
	}
	if n := api.db.Count(t, "post_idempotency_keys"); n != 0 {
		t.Fatalf("%d keys kept after a failed post", n)
	}
	api.db.Exec(t, `DROP TRIGGER refuse_outbox ON outbox`)
	for range 2 {
		if res := api.createWithKey(u, "k1", "must not half-exist"); res.Status != http.StatusOK {
			t.Fatalf("retry: %d %s", res.Status, res.Body)
		}
	}
	api.expectCounts(1, 1, 1)
}
