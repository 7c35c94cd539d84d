package outbox_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

// TestHostileResumePageCostIsBoundedByThePage (issue #24, item 8): a user following 100,000
// authors who reconnected with since=0 cost 184 ms of database time per resume page, every page of
// every resume, because the page expanded every follow (and, planned generically, hashed them all
// with the whole outbox). A page must read about as many rows as it covers, whatever the user
// follows, in custom and generic plans alike: counted by PostgreSQL's own statistics of the rows
// and index entries read (pg_stat_user_tables, pg_stat_user_indexes), not by time. Here 10,000
// follows and 20,000 posts, half of them by followed authors; a user with 900 follows (read from
// the follows side) is bounded the same way.
func TestHostileResumePageCostIsBoundedByThePage(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t)
	authors := e.users(20000)
	people := e.users(2)
	heavy, medium := people[0], people[1]
	e.db.Exec(t, `INSERT INTO friendships (user_id, friend_id) SELECT $1, unnest($2::uuid[])`, heavy, authors[:10000])
	e.db.Exec(t, `INSERT INTO friendships (user_id, friend_id) SELECT $1, unnest($2::uuid[])`, medium, authors[:900])
	// Everyone else follows a few authors, as on a real network: the statistics a generic plan is
	// made from then say what a user's follows usually are.
	e.db.Exec(t, `INSERT INTO friendships (user_id, friend_id)
		SELECT a, ($1::uuid[])[1 + (i * 7 + k) % 20000] FROM unnest($1::uuid[]) WITH ORDINALITY AS u(a, i), generate_series(1, 5) k
		WHERE i > 10000 AND a <> ($1::uuid[])[1 + (i * 7 + k) % 20000] ON CONFLICT DO NOTHING`, authors)
	e.db.Exec(t, `WITH p AS (
			SELECT n, gen_random_uuid() AS id, ($1::uuid[])[1 + n % 20000] AS author FROM generate_series(1, 20000) n),
		ev AS (INSERT INTO events (id, aggregate_id, aggregate_version, type, payload)
			SELECT id, id, 1, 'post.created', jsonb_build_object('post_id', id, 'author_user_id', author, 'text', 'post ' || n) FROM p),
		po AS (INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version)
			SELECT id, author, 'post ' || n, now(), now(), 1 FROM p)
		INSERT INTO outbox (event_id, author_user_id, position, status, relayed_at) SELECT id, author, n, 'relayed', now() FROM p`, authors)
	e.db.Exec(t, `VACUUM ANALYZE`)
	posts := domain.RelayedEventTypesOf([]string{domain.KindPost})

	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		cfg, err := pgxpool.ParseConfig(e.db.URL)
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns = 1 // the statistics below are read on the connection that ran the resume
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, "SET plan_cache_mode = "+mode)
			return err
		}
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		resume := outbox.NewResume(pool)
		for _, c := range []struct {
			name string
			user string
		}{{"10,000 follows", heavy}, {"900 follows", medium}} {
			before := rowsRead(t, pool)
			frames, last, more, err := resume.Missed(context.Background(), c.user, 0, 100, 1<<20, posts)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) == 0 || !more || last <= 0 {
				t.Fatalf("%s, %s: %d frames, last %d, more %v: want a first page", mode, c.name, len(frames), last, more)
			}
			read := rowsRead(t, pool)
			t.Logf("%s, %s: a page of %d frames read %d of friendships, %d of outbox", mode, c.name, len(frames),
				read["friendships"]-before["friendships"], read["outbox"]-before["outbox"])
			for table, n := range read {
				if n -= before[table]; n > 2*outbox.ResumeWindow+10 {
					t.Errorf("%s, %s: one page of %d frames read %d rows and index entries of %s, want at most %d",
						mode, c.name, len(frames), n, table, 2*outbox.ResumeWindow+10)
				}
			}
		}
		pool.Close()
	}
}

// rowsRead is how many rows and index entries of friendships and outbox PostgreSQL counted as
// read, the statements run on pool's one connection included (flushed first).
func rowsRead(t testing.TB, pool *pgxpool.Pool) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT relname, coalesce(seq_tup_read, 0)
			+ coalesce((SELECT sum(idx_tup_read) FROM pg_stat_user_indexes i WHERE i.relid = t.relid), 0)
		FROM pg_stat_user_tables t WHERE relname IN ('friendships', 'outbox')`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct {
		name string
		n    int64
	}, error) {
		var v struct {
			name string
			n    int64
		}
		err := r.Scan(&v.name, &v.n)
		return v, err
	})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, v := range out {
		m[v.name] = v.n
	}
	return m
}
