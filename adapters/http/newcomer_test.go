package http_test

import (
	"context"
	"testing"
	"time"
)

// TestPostsCarryCreatedAt: REST posts have the time of their post.created event, RFC3339 in UTC,
// in /post/get and /post/feed alike (a page that reloads keeps showing when each post was written).
func TestPostsCarryCreatedAt(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	author, reader := api.register("Anna", "Author"), api.register("Rita", "Reader")
	api.follow(reader, author)
	before := time.Now().Add(-time.Second)
	id := api.post(author, "with a time")
	var want time.Time
	if err := api.db.Pool.QueryRow(context.Background(),
		`SELECT created_at FROM events WHERE aggregate_id = $1 AND type = 'post.created'`, id).Scan(&want); err != nil {
		t.Fatal(err)
	}
	var one struct {
		CreatedAt string `json:"created_at"`
	}
	api.do("GET", "/post/get/"+id, "", nil).JSON(t, &one)
	var feed []struct {
		ID        string `json:"id"`
		CreatedAt string `json:"created_at"`
	}
	res := api.do("GET", "/post/feed", reader.Token, nil)
	res.JSON(t, &feed)
	if len(feed) != 1 || feed[0].ID != id {
		t.Fatalf("feed = %s", res.Body)
	}
	for where, s := range map[string]string{"/post/get": one.CreatedAt, "/post/feed": feed[0].CreatedAt} {
		at, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Errorf("%s: created_at %q is not RFC3339: %v", where, s, err)
			continue
		}
		if !at.Equal(want) || at.Location() != time.UTC || at.Before(before) {
			t.Errorf("%s: created_at %q, want the event's time %s in UTC", where, s, want.UTC().Format(time.RFC3339Nano))
		}
	}
}

// TestFriendListIsWhomTheCallerFollows: GET /friend/list (an addition to OTUS) lists the users
// the caller follows, the most recently followed first, pages like the feed, and follows
// set/delete at once.
func TestFriendListIsWhomTheCallerFollows(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	me, b, c, d := api.register("Me", "M"), api.register("Bob", "B"), api.register("Carl", "C"), api.register("Dora", "D")
	list := func(u user, query string) []string {
		t.Helper()
		res := api.do("GET", "/friend/list?"+query, u.Token, nil)
		if res.Status != 200 {
			t.Fatalf("friend/list: %d %s", res.Status, res.Body)
		}
		var users []map[string]string
		res.JSON(t, &users)
		var out []string
		for _, u := range users {
			if u["first_name"] == "" || u["birthdate"] == "" || len(u) != 6 {
				t.Errorf("listed user %v: want the six User fields", u)
			}
			out = append(out, u["id"])
		}
		return out
	}
	if got := list(me, ""); len(got) != 0 {
		t.Errorf("following nobody: %v", got)
	}
	api.follow(me, b)
	api.follow(me, c)
	api.follow(me, d)
	api.follow(b, me) // who follows me is not whom I follow
	if got := list(me, "limit=1000"); !equal(got, []string{d.ID, c.ID, b.ID}) {
		t.Errorf("list = %v, want newest first [%s %s %s]", got, d.ID, c.ID, b.ID)
	}
	if got := list(me, "offset=1&limit=1"); !equal(got, []string{c.ID}) {
		t.Errorf("second page of one = %v, want [%s]", got, c.ID)
	}
	if res := api.do("PUT", "/friend/delete/"+c.ID, me.Token, nil); res.Status != 200 {
		t.Fatal(res.Status)
	}
	if got := list(me, ""); !equal(got, []string{d.ID, b.ID}) {
		t.Errorf("after unfollowing Carl: %v", got)
	}
	if got := list(b, ""); !equal(got, []string{me.ID}) {
		t.Errorf("Bob's list = %v", got)
	}
	expectError(t, api.do("GET", "/friend/list", "", nil), 401)
	expectError(t, api.do("GET", "/friend/list?limit=0", me.Token, nil), 400)
	// A valid token for a user this database does not have: 401, as for /friend/set.
	ghost, err := api.tokens.Issue(unknownID)
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, api.do("GET", "/friend/list", ghost, nil), 401)
}

// TestHeadAnswersEveryGetRoute: HEAD is GET without the body (curl -I, load balancers).
func TestHeadAnswersEveryGetRoute(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	u := api.register("Hedda", "Head")
	id := api.post(u, "hi")
	for _, path := range []string{"/healthz", "/readyz", "/openapi.yaml", "/post/get/" + id, "/user/get/" + u.ID} {
		get, head := api.do("GET", path, "", nil), api.do("HEAD", path, "", nil)
		if head.Status != get.Status || get.Status != 200 {
			t.Errorf("HEAD %s = %d, GET = %d", path, head.Status, get.Status)
		}
		if len(head.Body) != 0 {
			t.Errorf("HEAD %s has a body of %d bytes", path, len(head.Body))
		}
		if head.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
			t.Errorf("HEAD %s Content-Type %q, GET's %q", path, head.Header.Get("Content-Type"), get.Header.Get("Content-Type"))
		}
	}
	if res := api.do("HEAD", "/post/feed", u.Token, nil); res.Status != 200 {
		t.Errorf("HEAD /post/feed with a token = %d", res.Status)
	}
	if res := api.do("HEAD", "/no/such/route", "", nil); res.Status != 404 {
		t.Errorf("HEAD of an unknown route = %d, want 404", res.Status)
	}
}
