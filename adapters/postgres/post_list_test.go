package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
)

// TestPostListPlanDoesNotGrowWithDepth: a page of one user's posts (GET /post/list) reads, by
// cursor, as many rows 80% of the way down that user's posts as at the top, and a few times the
// page: the (author_user_id, id DESC) index from the cursor down, then one probe per post, in the
// generic plan PostgreSQL caches after five runs and in the custom one; the offset (at most
// FEED_MAX_OFFSET) adds what it skips, no more. Two authors among 60,000 posts: prolific wrote a
// third of them, rare 60, spread over all (a scan of posts_pkey filtered by author, a plan the
// generic one could pick, would read thousands of posts for either).
func TestPostListPlanDoesNotGrowWithDepth(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	prolific, rare := userID(1), userID(2)
	db.Exec(t, `INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
		SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'U', 'S', '1990-01-01', '', '', 'x', 1
		FROM generate_series(1, 102) i`)
	// Post ids are time-ordered like UUIDv7: post k was published k ms after an epoch.
	db.Exec(t, `INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version)
		SELECT (lpad(to_hex(1700000000000 + k), 12, '0') || '7' || substr(md5(k::text), 1, 3) || '8' || substr(md5(k::text), 4, 15))::uuid,
			('00000000-0000-4000-8000-' || lpad((CASE WHEN k % 1000 = 1 THEN 2 WHEN k % 3 = 0 THEN 1 ELSE 3 + k % 100 END)::text, 12, '0'))::uuid,
			'post ' || k, now(), now(), 1
		FROM generate_series(1, 60000) k`)
	db.Exec(t, `VACUUM ANALYZE`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	deep := func(author string) string { // the id of the author's post 80% of the way down
		var id string
		if err := db.Pool.QueryRow(ctx, `SELECT id FROM posts WHERE author_user_id = $1 ORDER BY id DESC
			OFFSET (SELECT count(*) * 8 / 10 FROM posts WHERE author_user_id = $1) LIMIT 1`, author).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `PREPARE list AS `+postgres.AuthorPostsQuery); err != nil {
		t.Fatal(err)
	}
	const limit, offset = 100, 1000
	page := 3*(limit+1) + 2 // the index entries and a probe (and a descent) per post
	for _, author := range []struct{ name, id string }{{"prolific", prolific}, {"rare", rare}} {
		for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
			if _, err := conn.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
				t.Fatal(err)
			}
			read := map[string]int{}
			for _, tc := range []struct {
				depth, cursor string
				offset, bound int
			}{
				{"top", "ffffffff-ffff-ffff-ffff-ffffffffffff", 0, page},
				{"deep", deep(author.id), 0, page},
				{"deep, at the offset bound", deep(author.id), offset, offset + page},
			} {
				var plan string
				if err := conn.QueryRow(ctx, fmt.Sprintf(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE list('%s', '%s', %d, %d, 1048576)`,
					author.id, tc.cursor, tc.offset, limit)).Scan(&plan); err != nil {
					t.Fatal(err)
				}
				read[tc.depth] = rowsRead(t, plan)
				if read[tc.depth] > tc.bound {
					t.Errorf("%s, %s, %s: %d rows read, want ≤ %d:\n%s", author.name, mode, tc.depth, read[tc.depth], tc.bound, plan)
				}
			}
			t.Logf("%s, %s: %d rows read at the top, %d 80%% down, %d there at offset %d", author.name, mode,
				read["top"], read["deep"], read["deep, at the offset bound"], offset)
			if read["deep"] > read["top"] {
				t.Errorf("%s, %s: %d rows read 80%% down, %d at the top: the cost grows with depth", author.name, mode, read["deep"], read["top"])
			}
		}
	}
}
