package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// routeSQL reads, for a claimed batch, the online recipients of every row grouped by the realtime
// instance that holds them (design.md §3): the followers of each author in $1 and the named
// recipients ($3 row index, $4 user) of the other rows, joined with presence of instances whose
// lease is live. It runs after the claim committed, so its snapshot sees every presence row
// committed before the batch's positions were: see Relay for why that makes the hand-over exact.
//
// The cost is bounded by the smaller side, whatever the plan. An author with fewer than $2
// followers (about the number of users online) is read from the follower side: their followers,
// then a presence lookup each. A bigger one is read from the presence side: every online user,
// then a friendships primary-key lookup each. So 1,000,000 followers of whom 10,000 are online
// cost 10,000 lookups, and an offline follower costs nothing beyond its index entry. The LATERAL
// subqueries with OFFSET 0 / LIMIT fix those nested loops for the leader's generic plans
// (leaderConfig): a hash join would read every follower of a celebrity, or all of presence for a
// small author.
const routeSQL = `
SELECT a.author::text, -1, x.instance_id, array_agg(x.user_id::text)
FROM unnest($1::uuid[]) AS a(author)
CROSS JOIN LATERAL (
    SELECT count(*) >= $2 AS big FROM (SELECT 1 FROM friendships WHERE friend_id = a.author LIMIT $2 OFFSET 0) c
) s
CROSS JOIN LATERAL (
    SELECT f.user_id, p.instance_id
    FROM friendships f
    CROSS JOIN LATERAL (SELECT instance_id FROM presence WHERE user_id = f.user_id OFFSET 0) p
    WHERE NOT s.big AND f.friend_id = a.author
    UNION ALL
    SELECT p.user_id, p.instance_id
    FROM presence p
    CROSS JOIN LATERAL (SELECT 1 FROM friendships f WHERE f.user_id = p.user_id AND f.friend_id = a.author LIMIT 1) f
    WHERE s.big
) x
JOIN realtime_instances i ON i.id = x.instance_id AND i.lease_until > now()
GROUP BY a.author, x.instance_id
UNION ALL
SELECT NULL, r.idx, p.instance_id, array_agg(r.user_id::text)
FROM unnest($3::int[], $4::uuid[]) AS r(idx, user_id)
CROSS JOIN LATERAL (SELECT instance_id FROM presence WHERE user_id = r.user_id OFFSET 0) p
JOIN realtime_instances i ON i.id = p.instance_id AND i.lease_until > now()
GROUP BY r.idx, p.instance_id`

// target is one instance and the users there a row goes to.
type target struct {
	instance string
	users    []string
}

// routes are a batch's targets: by author for rows to followers, by row index for rows with
// named recipients.
type routes struct {
	byAuthor map[string][]target
	byRow    map[int][]target
}

// of returns the targets of the i-th row of a batch.
func (rt routes) of(i int, rw *row) []target {
	if rw.recipients != nil {
		return rt.byRow[i]
	}
	return rt.byAuthor[rw.author]
}

// route reads the online recipients of rows (those to be sent: not refused, not superseded) on
// the leader's connection. bigAt is the follower count from which an author is read from the
// presence side.
func route(ctx context.Context, conn *pgx.Conn, rows []*row, bigAt int) (routes, error) {
	var authors []string
	seen := map[string]bool{}
	var idx []int32
	var users []string
	for i, rw := range rows {
		if rw.refuse != "" || rw.superseded {
			continue
		}
		if rw.recipients != nil {
			for _, u := range rw.recipients {
				idx = append(idx, int32(i))
				users = append(users, u)
			}
			continue
		}
		if !seen[rw.author] {
			seen[rw.author] = true
			authors = append(authors, rw.author)
		}
	}
	rt := routes{byAuthor: map[string][]target{}, byRow: map[int][]target{}}
	if len(authors) == 0 && len(idx) == 0 {
		return rt, nil
	}
	res, err := conn.Query(ctx, routeSQL, authors, bigAt, idx, users)
	if err != nil {
		return routes{}, fmt.Errorf("route outbox rows: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var author *string
		var i int
		var t target
		if err := res.Scan(&author, &i, &t.instance, &t.users); err != nil {
			return routes{}, fmt.Errorf("route outbox rows: %w", err)
		}
		if author != nil {
			rt.byAuthor[*author] = append(rt.byAuthor[*author], t)
		} else {
			rt.byRow[i] = append(rt.byRow[i], t)
		}
	}
	if err := res.Err(); err != nil {
		return routes{}, fmt.Errorf("route outbox rows: %w", err)
	}
	return rt, nil
}

// presenceSize estimates how many users are online, for route's choice of side: refreshed at most
// every presenceRecount (a count of a large presence table is a scan).
type presenceSize struct {
	n  int
	at time.Time
}

const presenceRecount = 5 * time.Second

// minBigAt keeps small authors on the follower side while few users are online.
const minBigAt = 1000

func (p *presenceSize) bigAt(ctx context.Context, conn *pgx.Conn) int {
	if time.Since(p.at) >= presenceRecount {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM presence`).Scan(&n); err == nil {
			p.n, p.at = n, time.Now()
		}
	}
	return max(minBigAt, p.n)
}
