package http_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	httpapi "github.com/socialnet/social/adapters/http"
)

const unknownID = "01939c5e-0000-7000-8000-000000000000"

func TestPostLifecycle(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	author := api.register("Anna", "Author")

	id := api.post(author, "first version")
	get := func() (int, map[string]string) {
		res := api.do("GET", "/post/get/"+id, "", nil)
		var p map[string]string
		if res.Status == 200 {
			res.JSON(t, &p)
		}
		return res.Status, p
	}
	if st, p := get(); st != 200 || p["id"] != id || p["text"] != "first version" || p["author_user_id"] != author.ID || p["created_at"] == "" || len(p) != 4 {
		t.Fatalf("get after create: %d %v", st, p)
	}
	if res := api.do("PUT", "/post/update", author.Token, map[string]string{"id": id, "text": "second version"}); res.Status != 200 || len(res.Body) != 0 {
		t.Fatalf("update: %d %q", res.Status, res.Body)
	}
	if st, p := get(); st != 200 || p["text"] != "second version" {
		t.Fatalf("get after update: %d %v", st, p)
	}
	if res := api.do("PUT", "/post/delete/"+id, author.Token, nil); res.Status != 200 || len(res.Body) != 0 {
		t.Fatalf("delete: %d %q", res.Status, res.Body)
	}
	if st, _ := get(); st != 404 {
		t.Fatalf("get after delete: %d, want 404", st)
	}
	// Every change is an event with the next aggregate version, and each has its outbox row.
	for v, typ := range []string{"post.created", "post.updated", "post.deleted"} {
		if n := api.db.Count(t, "events e JOIN outbox o ON o.event_id = e.id",
			fmt.Sprintf("e.aggregate_id = '%s' AND e.aggregate_version = %d AND e.type = '%s'", id, v+1, typ)); n != 1 {
			t.Errorf("%s (version %d) with outbox row: %d, want 1", typ, v+1, n)
		}
	}
	if n := api.db.Count(t, "outbox", "status = 'pending'", "author_user_id = '"+author.ID+"'"); n != 3 {
		t.Errorf("pending outbox rows = %d, want 3", n)
	}
}

func TestPostChangesAreAuthorOnly(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	author, other := api.register("Anna", "Author"), api.register("Boris", "Other")
	id := api.post(author, "mine")
	events := api.db.Count(t, "events")

	expectError(t, api.do("PUT", "/post/update", other.Token, map[string]string{"id": id, "text": "hijacked"}), 403)
	expectError(t, api.do("PUT", "/post/delete/"+id, other.Token, nil), 403)
	expectError(t, api.do("PUT", "/post/update", author.Token, map[string]string{"id": unknownID, "text": "x"}), 404)
	expectError(t, api.do("PUT", "/post/delete/"+unknownID, author.Token, nil), 404)
	expectError(t, api.do("PUT", "/post/delete/nope", author.Token, nil), 400)
	expectError(t, api.do("PUT", "/post/update", author.Token, map[string]string{"id": "nope", "text": "x"}), 400)
	expectError(t, api.do("PUT", "/post/update", author.Token, map[string]string{"id": id}), 400)
	expectError(t, api.do("GET", "/post/get/nope", "", nil), 400)
	expectError(t, api.do("GET", "/post/get/"+unknownID, "", nil), 404)

	if n := api.db.Count(t, "events"); n != events {
		t.Errorf("events %d -> %d after refused changes", events, n)
	}
	if n := api.db.Count(t, "posts", "text = 'mine'"); n != 1 {
		t.Errorf("post changed by a refused request")
	}
}

func TestPostTextLimits(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	u := api.register("Anna", "Author")
	for _, tc := range []struct {
		name   string
		body   string
		status int
	}{
		{"one character", `{"text":"a"}`, 200},
		{"10000 characters of Cyrillic", `{"text":"` + strings.Repeat("я", 10000) + `"}`, 200},
		{"empty", `{"text":""}`, 400},
		{"missing", `{}`, 400},
		{"null", `{"text":null}`, 400},
		{"number", `{"text":42}`, 400},
		{"10001 characters", `{"text":"` + strings.Repeat("a", 10001) + `"}`, 400},
		{"invalid UTF-8", "{\"text\":\"\xc3\x28\"}", 400},
		{"body over 1 MiB", `{"text":"` + strings.Repeat("a", 1<<20) + `"}`, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := api.db.Count(t, "posts")
			res := api.do("POST", "/post/create", u.Token, tc.body)
			if tc.status == 200 {
				var id string
				if res.Status != 200 {
					t.Fatalf("status %d: %s", res.Status, res.Body)
				}
				res.JSON(t, &id) // a bare JSON string
				return
			}
			expectError(t, res, tc.status)
			if after := api.db.Count(t, "posts"); after != before {
				t.Errorf("posts %d -> %d after a refused create", before, after)
			}
		})
	}
}

func TestFriendSetIsDirected(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	a, b := api.register("Alice", "A"), api.register("Bob", "B")
	api.follow(a, b) // A follows B

	bPost := api.post(b, "from B")
	aPost := api.post(a, "from A")
	if feed := api.feedIDs(a, "limit=10"); !equal(feed, []string{bPost}) {
		t.Errorf("A's feed = %v, want B's post %s only", feed, bPost)
	}
	if feed := api.feedIDs(b, "limit=10"); len(feed) != 0 {
		t.Errorf("B's feed = %v, want empty: B does not follow A (%s)", feed, aPost)
	}
}

func TestFriendSetAndDeleteAreIdempotent(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	a, b := api.register("Alice", "A"), api.register("Bob", "B")
	p := api.post(b, "hello")
	for range 2 {
		api.follow(a, b)
	}
	if n := api.db.Count(t, "events", "type = 'friend.added'"); n != 1 {
		t.Errorf("friend.added events = %d after two sets, want 1", n)
	}
	if feed := api.feedIDs(a, ""); !equal(feed, []string{p}) {
		t.Errorf("feed = %v, want [%s]", feed, p)
	}
	for range 2 {
		if res := api.do("PUT", "/friend/delete/"+b.ID, a.Token, nil); res.Status != 200 {
			t.Fatalf("delete: %d %s", res.Status, res.Body)
		}
	}
	if n := api.db.Count(t, "events", "type = 'friend.removed'"); n != 1 {
		t.Errorf("friend.removed events = %d after two deletes, want 1", n)
	}
	if feed := api.feedIDs(a, ""); len(feed) != 0 {
		t.Errorf("feed after unfriending = %v, want empty", feed)
	}
	// The follower's aggregate versions are 1 (registered), 2 (added), 3 (removed).
	if n := api.db.Count(t, "events", "aggregate_id = '"+a.ID+"'", "aggregate_version IN (1, 2, 3)"); n != 3 {
		t.Errorf("follower events with versions 1..3 = %d, want 3", n)
	}
}

func TestFriendErrors(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	a := api.register("Alice", "A")
	for _, tc := range []struct {
		name, method, path, token string
		status                    int
	}{
		{"yourself", "PUT", "/friend/set/" + a.ID, a.Token, 400},
		{"unknown user", "PUT", "/friend/set/" + unknownID, a.Token, 404},
		{"unknown user on delete", "PUT", "/friend/delete/" + unknownID, a.Token, 404},
		{"invalid id", "PUT", "/friend/set/abc", a.Token, 400},
		{"no token", "PUT", "/friend/set/" + unknownID, "", 401},
		{"wrong method", "POST", "/friend/set/" + unknownID, a.Token, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, api.do(tc.method, tc.path, tc.token, nil), tc.status)
		})
	}
	if n := api.db.Count(t, "friendships"); n != 0 {
		t.Errorf("friendships = %d, want 0", n)
	}
}

func (a *testAPI) feedIDs(u user, query string) []string {
	a.t.Helper()
	return a.postIDs(u, "/post/feed?"+query)
}

// postIDs reads a list of posts (/post/feed, /post/list) as u and returns their ids in order.
func (a *testAPI) postIDs(u user, path string) []string {
	a.t.Helper()
	res := a.do("GET", path, u.Token, nil)
	if res.Status != 200 {
		a.t.Fatalf("%s: %d %s", path, res.Status, res.Body)
	}
	var posts []struct {
		ID           string `json:"id"`
		Text         string `json:"text"`
		AuthorUserID string `json:"author_user_id"`
	}
	res.JSON(a.t, &posts)
	ids := make([]string, len(posts))
	for i, p := range posts {
		ids[i] = p.ID
	}
	return ids
}

func TestFeedIsNewestFirstAndPages(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	reader, b, c, stranger := api.register("Reader", "R"), api.register("Bob", "B"), api.register("Carl", "C"), api.register("Stranger", "S")
	api.follow(reader, b)
	api.follow(reader, c)
	var want []string // newest first
	for i := range 25 {
		author := b
		if i%2 == 1 {
			author = c
		}
		want = append([]string{api.post(author, fmt.Sprintf("post %d", i))}, want...)
		api.post(stranger, "noise")
	}
	if got := api.feedIDs(reader, ""); !equal(got, want[:10]) {
		t.Errorf("default page = %v, want the 10 newest %v", got, want[:10])
	}
	if got := api.feedIDs(reader, "offset=10&limit=10"); !equal(got, want[10:20]) {
		t.Errorf("second page = %v, want %v", got, want[10:20])
	}
	if got := api.feedIDs(reader, "offset=20&limit=1000"); !equal(got, want[20:]) {
		t.Errorf("last page = %v, want %v", got, want[20:])
	}
	if got := api.feedIDs(reader, "offset=25&limit=5"); len(got) != 0 {
		t.Errorf("past the end = %v, want empty", got)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=-1", "offset=-1", "offset=x", "limit=1.5", "offset=1000001"} {
		expectError(t, api.do("GET", "/post/feed?"+q, reader.Token, nil), 400)
	}
}

// TestPostListIsOneUsersPostsPagedLikeTheFeed: GET /post/list?user_id= (an addition to OTUS, for
// the page's own posts) lists that user's posts and nobody else's, newest first, with the feed's
// paging rules and bounds; any signed-in user may read anyone's.
func TestPostListIsOneUsersPostsPagedLikeTheFeed(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	author, other, reader := api.register("Ada", "Author"), api.register("Otto", "Other"), api.register("Rita", "Reader")
	var want []string // newest first
	for i := range 25 {
		want = append([]string{api.post(author, fmt.Sprintf("post %d", i))}, want...)
		api.post(other, "noise")
	}
	list := "/post/list?user_id=" + author.ID
	for _, u := range []user{author, reader} {
		if got := api.postIDs(u, list); !equal(got, want[:10]) {
			t.Errorf("default page = %v, want the 10 newest %v", got, want[:10])
		}
	}
	if got := api.postIDs(reader, list+"&offset=10&limit=10"); !equal(got, want[10:20]) {
		t.Errorf("second page = %v, want %v", got, want[10:20])
	}
	if got := api.postIDs(reader, list+"&offset=20&limit=1000"); !equal(got, want[20:]) {
		t.Errorf("last page = %v, want %v", got, want[20:])
	}
	if got := api.postIDs(reader, list+"&offset=25&limit=5"); len(got) != 0 {
		t.Errorf("past the end = %v, want empty", got)
	}
	if got := api.postIDs(reader, "/post/list?user_id="+reader.ID); len(got) != 0 {
		t.Errorf("a user without posts: %v, want empty", got)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=-1", "offset=-1", "offset=x", "limit=1.5", "offset=1000001"} {
		expectError(t, api.do("GET", list+"&"+q, reader.Token, nil), 400)
	}
	for _, path := range []string{"/post/list", "/post/list?user_id=", "/post/list?user_id=nope"} {
		expectError(t, api.do("GET", path, reader.Token, nil), 400)
	}
	expectError(t, api.do("GET", "/post/list?user_id="+unknownID, reader.Token, nil), 404)
	expectError(t, api.do("GET", list, "", nil), 401)
}

// A /post/list response is bounded like the feed's (docs/limits.md): 120 of the longest posts
// (2.4 MB of text) come as pages under 1 MiB, each with a Link to the next, until all are read.
func TestPostListPageIsBoundedInBytes(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	author := api.register("Ada", "Bytes")
	api.db.Exec(t, `INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version)
		SELECT gen_random_uuid(), $1, repeat('я', 10000), now(), now(), 1 FROM generate_series(1, 120)`, author.ID)
	next := regexp.MustCompile(`^</post/list\?cursor=[A-Za-z0-9_-]+&limit=1000&user_id=` + author.ID + `>; rel="next"$`)
	seen := map[string]bool{}
	for path := "/post/list?user_id=" + author.ID + "&limit=1000"; path != ""; {
		res := api.do("GET", path, author.Token, nil)
		if res.Status != 200 || len(res.Body) > httpapi.DefaultFeedMaxBytes {
			t.Fatalf("%s: %d, %d bytes", path, res.Status, len(res.Body))
		}
		var posts []struct {
			ID string `json:"id"`
		}
		res.JSON(t, &posts)
		if len(posts) == 0 {
			t.Fatalf("%s: an empty page", path)
		}
		for _, p := range posts {
			if seen[p.ID] {
				t.Fatalf("%s: post %s again", path, p.ID)
			}
			seen[p.ID] = true
		}
		path = ""
		if l := res.Header.Get("Link"); l != "" {
			if !next.MatchString(l) {
				t.Fatalf("Link %q after %d posts", l, len(seen))
			}
			path = strings.TrimPrefix(strings.Split(l, ">")[0], "<")
		}
	}
	if len(seen) != 120 {
		t.Errorf("read %d posts through the Links, want 120", len(seen))
	}
}

func TestBearerAuthRefusesBadTokens(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	u := api.register("Alice", "A")
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := jwt.MapClaims{"sub": u.ID, "exp": time.Now().Add(time.Hour).Unix()}
	expired, err := api.tokens.IssueUntil(u.ID, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for name, header := range map[string]string{
		"missing":            "",
		"not bearer":         "Basic " + u.Token,
		"garbage":            "Bearer not.a.jwt",
		"alg none":           "Bearer " + sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid),
		"HS512, same secret": "Bearer " + sign(jwt.SigningMethodHS512, []byte(testSecret), valid),
		"other secret":       "Bearer " + sign(jwt.SigningMethodHS256, []byte(strings.Repeat("k", 32)), valid),
		"no exp":             "Bearer " + sign(jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"sub": u.ID}),
		"subject not a uuid": "Bearer " + sign(jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"sub": "x", "exp": time.Now().Add(time.Hour).Unix()}),
		"expired":            "Bearer " + expired,
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", api.srv.URL+"/post/create", strings.NewReader(`{"text":"x"}`))
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 401 {
				t.Fatalf("status %d, want 401", res.StatusCode)
			}
		})
	}
	if n := api.db.Count(t, "posts"); n != 0 {
		t.Errorf("posts = %d, want 0", n)
	}
	// A valid token still works.
	api.post(u, "ok")
}
