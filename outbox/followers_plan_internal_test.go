package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
)

// authorWithFollowers creates an author followed by n new users: enough, at 20,000, for the
// planner to prefer an index over anything else when the plan is right.
func authorWithFollowers(t *testing.T, db *pgtest.DB, n int) string {
	t.Helper()
	author := uuid.Must(uuid.NewV7()).String()
	db.Exec(t, `INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
		SELECT gen_random_uuid(), 'F', 'S', '2000-01-01', '', 'C', 'x', 1 FROM generate_series(1, $1)`, n)
	db.Exec(t, `INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
		VALUES ($1, 'A', 'B', '2000-01-01', '', 'C', 'x', 1)`, author)
	db.Exec(t, `INSERT INTO friendships (user_id, friend_id) SELECT id, $1 FROM users WHERE id <> $1`, author)
	return author
}

// walkPlan calls visit on every node of an EXPLAIN (FORMAT JSON) plan, parents first.
func walkPlan(t *testing.T, plan []byte, visit func(node map[string]any)) {
	t.Helper()
	var top []map[string]any
	if err := json.Unmarshal(plan, &top); err != nil {
		t.Fatal(err)
	}
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		visit(n)
		kids, _ := n["Plans"].([]any)
		for _, k := range kids {
			walk(k.(map[string]any))
		}
	}
	walk(top[0]["Plan"].(map[string]any))
}

// A follower page must be an index range scan that stops after LIMIT rows, on the plan PostgreSQL
// keeps for a prepared statement (generic, after five runs) as well as on a fresh one. A Sort in
// the plan means every page reads all of the author's remaining followers: that made a
// 1,000,000-follower post take 110 s (ORDER BY named the text output column, not the uuid).
func TestFollowerPageIsAnIndexRangeScan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	author := authorWithFollowers(t, db, 20000)
	db.Exec(t, `ANALYZE friendships`)

	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "PREPARE page(uuid, uuid, int) AS "+nextPageSQL); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
		if _, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
			t.Fatal(err)
		}
		var plan []byte
		// From the middle of the list: half the followers lie after the cursor.
		if err := conn.QueryRow(ctx, `EXPLAIN (FORMAT JSON) EXECUTE page('`+author+`', '80000000-0000-0000-0000-000000000000', 1000)`).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		var nodes []string
		walkPlan(t, plan, func(n map[string]any) { nodes = append(nodes, n["Node Type"].(string)) })
		got := strings.Join(nodes, " > ")
		if got != "Limit > Index Only Scan" && got != "Limit > Index Scan" {
			t.Errorf("%s: follower page plan is %q, want a Limit over an index range scan", mode, got)
		}
	}
}

// The claim reads each author's first follower page (claimSQL): a range of the index that stops
// after a page and one, not all of an author's followers, whatever plan PostgreSQL keeps.
func TestClaimReadsOnlyTheFirstFollowerPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	author := authorWithFollowers(t, db, 20000)
	event := uuid.Must(uuid.NewV7()).String()
	db.Exec(t, `INSERT INTO events (id, aggregate_id, aggregate_version, type, payload)
		VALUES ($1, gen_random_uuid(), 1, 'post.created', '{}')`, event)
	db.Exec(t, `INSERT INTO outbox (event_id, author_user_id) VALUES ($1, $2)`, event, author)
	db.Exec(t, `ANALYZE`)

	for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) // the claim's insert and positions with it (also when a check fails)
		if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = "+mode); err != nil {
			t.Fatal(err)
		}
		// Named per mode: a prepared statement outlives the transaction on its connection.
		if _, err := tx.Exec(ctx, "PREPARE claim_"+mode+"(int, bigint[], int) AS "+claimSQL); err != nil {
			t.Fatal(err)
		}
		var plan []byte
		if err := tx.QueryRow(ctx, fmt.Sprintf(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim_%s(500, '{}', %d)`, mode, readPageSize+1)).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		read := -1.0
		walkPlan(t, plan, func(n map[string]any) {
			if n["Relation Name"] == "friendships" {
				read = n["Actual Rows"].(float64) * n["Actual Loops"].(float64)
			}
		})
		if read < 0 || read > readPageSize+1 {
			t.Errorf("%s: the claim read %v of the author's 20,000 followers, want at most %d", mode, read, readPageSize+1)
		}
	}
}

// The claim hands each author's first follower page to the emitter once, with full set when more
// followers remain; authors without followers have none; a row whose outbox recipients disagree
// with its event's audience is refused, not sent to nobody.
func TestClaimReadsEachAuthorsFirstPageOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	newUser := func() string {
		id := uuid.Must(uuid.NewV7()).String()
		db.Exec(t, `INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
			VALUES ($1, 'A', 'B', '2000-01-01', '', 'C', 'x', 1)`, id)
		return id
	}
	big, small, lonely := newUser(), newUser(), newUser()
	db.Exec(t, `INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
		SELECT gen_random_uuid(), 'F', 'S', '2000-01-01', '', 'C', 'x', 1 FROM generate_series(1, 1500)`)
	db.Exec(t, `INSERT INTO friendships (user_id, friend_id) SELECT id, $1 FROM users WHERE id NOT IN ($1, $2, $3)`, big, small, lonely)
	db.Exec(t, `INSERT INTO friendships (user_id, friend_id) SELECT id, $1 FROM users WHERE id NOT IN ($1, $2, $3) ORDER BY id LIMIT 3`, small, big, lonely)
	post := func(author string, recipients []string) {
		id, event := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
		payload, _ := json.Marshal(domain.PostChanged{PostID: id, AuthorUserID: author, Text: "hello"})
		db.Exec(t, `INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version) VALUES ($1, $2, 'hello', now(), now(), 1)`, id, author)
		db.Exec(t, `INSERT INTO events (id, aggregate_id, aggregate_version, type, payload) VALUES ($1, $2, 1, 'post.created', $3)`, event, id, payload)
		db.Exec(t, `INSERT INTO outbox (event_id, author_user_id, recipients) VALUES ($1, $2, $3)`, event, author, recipients)
	}
	post(big, []string{small}) // first in id order, and inconsistent: refused
	post(big, nil)
	post(small, nil)
	post(big, nil)
	post(lonely, nil)

	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	c, err := claimBatch(ctx, conn.Conn(), 10, nil, split{size: 1000, lanes: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.rows) != 5 {
		t.Fatalf("claimed %d rows, want 5", len(c.rows))
	}
	if c.rows[0].refuse == "" {
		t.Error("a post row naming explicit recipients was not refused")
	}
	for _, r := range c.rows[1:] {
		if r.refuse != "" || r.superseded {
			t.Errorf("row %d: refused %q, superseded %v", r.id, r.refuse, r.superseded)
		}
	}
	if len(c.firsts) != 2 {
		t.Fatalf("first pages for %d authors, want 2 (the lonely author has no followers)", len(c.firsts))
	}
	if p := c.firsts[big]; len(p.ids) != readPageSize || !p.full || len(p.msgs) != 2 || len(p.msgs[0].cc) != leadFollowers-1 {
		t.Errorf("big author's page: %d followers, full %v, %d messages; want %d, full, a %d-follower lead and the rest",
			len(p.ids), p.full, len(p.msgs), readPageSize, leadFollowers)
	}
	if p := c.firsts[small]; len(p.ids) != 3 || p.full || len(p.msgs) != 1 {
		t.Errorf("small author's page: %d followers, full %v, %d messages; want 3, not full, one message", len(p.ids), p.full, len(p.msgs))
	}
}

// The leader's claim reads every table by index whatever the statistics say (leaderConfig): its
// plan is made on an outbox analyzed empty, as on a fresh system, and run after a burst of 2,000
// rows by 200 authors that no ANALYZE has seen. No sequential scan, and one follower page per
// author, not per row. Without enable_seqscan = off, the generic plan made on the empty outbox
// reads outbox, events, posts and friendships sequentially (this test then fails).
func TestClaimPlanReadsByIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, `ANALYZE`)
	conn, err := pgx.ConnectConfig(ctx, leaderConfig(db.Pool))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "PREPARE claim_t(int, bigint[], int) AS "+claimSQL); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`EXECUTE claim_t(500, '{}', %d)`, readPageSize+1)); err != nil {
		t.Fatal(err) // on the empty outbox: the plan is made here
	}
	const authors, posts = 200, 2000
	db.Exec(t, `INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
		SELECT gen_random_uuid(), 'F', 'S', '2000-01-01', '', 'C', 'x', 1 FROM generate_series(1, $1)`, authors*6)
	db.Exec(t, `CREATE TABLE bench_authors AS SELECT id, row_number() OVER (ORDER BY id) AS n FROM users ORDER BY id LIMIT $1`, authors)
	db.Exec(t, `INSERT INTO friendships (user_id, friend_id)
		SELECT f.id, a.id FROM bench_authors a
		CROSS JOIN LATERAL (SELECT id FROM users WHERE id NOT IN (SELECT id FROM bench_authors) ORDER BY md5(id::text || a.id::text) LIMIT 5) f`)
	db.Exec(t, `WITH p AS (SELECT gen_random_uuid() AS post, gen_random_uuid() AS event, a.id AS author, g AS n
			FROM generate_series(1, $1) g JOIN bench_authors a ON a.n = 1 + g % $2),
		ev AS (INSERT INTO events (id, aggregate_id, aggregate_version, type, payload)
			SELECT event, post, 1, 'post.created', jsonb_build_object('postId', post, 'authorUserId', author, 'text', 'p') FROM p),
		ps AS (INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version) SELECT post, author, 'p', now(), now(), 1 FROM p)
		INSERT INTO outbox (event_id, author_user_id) SELECT event, author FROM p ORDER BY n`, posts, authors)

	var plan []byte
	if err := conn.QueryRow(ctx, fmt.Sprintf(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim_t(500, '{}', %d)`, readPageSize+1)).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	var seq []string
	pageReads := 0.0
	walkPlan(t, plan, func(n map[string]any) {
		rel, _ := n["Relation Name"].(string)
		if n["Node Type"] == "Seq Scan" && rel != "outbox_inflight" {
			seq = append(seq, rel)
		}
		if rel == "friendships" {
			pageReads += n["Actual Loops"].(float64)
		}
	})
	if len(seq) > 0 {
		t.Errorf("the claim reads %v sequentially", seq)
	}
	// 500 rows claimed, of 200 authors: 200 page reads (the claim takes rows in id order, and
	// each author has rows in the first 500).
	if pageReads > authors {
		t.Errorf("the claim read a follower page %v times for %d authors", pageReads, authors)
	}
}
