package outbox

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// bigAt is the follower count from which an author is read from the presence side: twice the
// users online, because a follower read from an index range and looked up in the copy costs less
// than a primary-key probe for an online user. minBigAt keeps small authors on the follower side
// while few users are online.
func bigAt(online int) int { return max(minBigAt, 2*online) }

const minBigAt = 1000

// followersSQL reads, after a claim committed, the recipients of the batch's authors in $1: for an
// author with fewer than $2 followers (bigAt) their followers, whose instances route looks up in
// the presence copy (presenceView); for a bigger one the online users among their followers with
// their instances, read from presence itself.
//
// The cost is bounded by the smaller side, whatever the plan. A small author costs an index range
// of their followers. A big one costs a friendships primary-key lookup per online user: 1,000,000
// followers of whom 10,000 are online cost 10,000 lookups, and an offline follower costs nothing
// beyond its index entry. The LATERAL subqueries with OFFSET 0 / LIMIT fix those plans for the
// leader's generic plans (leaderConfig): a hash join would read every follower of a celebrity.
const followersSQL = `
SELECT a.author::text, x.user_id, x.instance_id
FROM unnest($1::uuid[]) AS a(author)
CROSS JOIN LATERAL (
    SELECT count(*) >= $2 AS big FROM (SELECT 1 FROM friendships WHERE friend_id = a.author LIMIT $2 OFFSET 0) c
) s
CROSS JOIN LATERAL (
    SELECT f.user_id, NULL::text AS instance_id
    FROM friendships f
    WHERE NOT s.big AND f.friend_id = a.author
    UNION ALL
    SELECT p.user_id, p.instance_id
    FROM presence p
    CROSS JOIN LATERAL (SELECT 1 FROM friendships f WHERE f.user_id = p.user_id AND f.friend_id = a.author LIMIT 1) f
    WHERE s.big
) x`

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
// the leader's connection, in one round trip after the claim committed: the presence copy's
// catch-up, the live instances and the authors' followers (see presenceView for why this order
// makes the hand-over exact).
func route(ctx context.Context, conn *pgx.Conn, rows []*row, view *presenceView) (routes, error) {
	var authors []string
	seen := map[string]bool{}
	for _, rw := range rows {
		if rw.refuse == "" && !rw.superseded && rw.recipients == nil && !seen[rw.author] {
			seen[rw.author] = true
			authors = append(authors, rw.author)
		}
	}
	b := &pgx.Batch{}
	view.queueCatchUp(b)
	live := map[string]bool{}
	b.Queue(liveInstancesSQL).Query(func(res pgx.Rows) error {
		var id string
		_, err := pgx.ForEachRow(res, []any{&id}, func() error { live[id] = true; return nil })
		return err
	})
	byAuthor := map[string]map[string][]string{}
	add := func(author, instance, user string) {
		users := byAuthor[author]
		if users == nil {
			users = map[string][]string{}
			byAuthor[author] = users
		}
		users[instance] = append(users[instance], user)
	}
	if len(authors) > 0 {
		b.Queue(followersSQL, authors, bigAt(view.online())).Query(func(res pgx.Rows) error {
			var author string
			var user pgtype.UUID
			var instance pgtype.Text
			_, err := pgx.ForEachRow(res, []any{&author, &user, &instance}, func() error {
				if instance.Valid { // a big author's follower, read from presence
					if live[instance.String] {
						add(author, instance.String, uuid.UUID(user.Bytes).String())
					}
				} else if u := view.lookUp(user.Bytes); u != nil {
					for _, inst := range u.on(live) {
						add(author, inst, u.id)
					}
				}
				return nil
			})
			return err
		})
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return routes{}, fmt.Errorf("route outbox rows: %w", err)
	}

	rt := routes{byAuthor: map[string][]target{}, byRow: map[int][]target{}}
	for author, users := range byAuthor {
		rt.byAuthor[author] = targets(users)
	}
	for i, rw := range rows {
		if rw.refuse != "" || rw.superseded || rw.recipients == nil {
			continue
		}
		users := map[string][]string{}
		for _, id := range rw.recipients {
			parsed, err := uuid.Parse(id)
			if err != nil {
				continue // not a user id: nobody holds it
			}
			if u := view.lookUp(parsed); u != nil {
				for _, inst := range u.on(live) {
					users[inst] = append(users[inst], u.id)
				}
			}
		}
		rt.byRow[i] = targets(users)
	}
	return rt, nil
}

// targets turns users by instance into targets, instances in name order (a stable message order).
func targets(users map[string][]string) []target {
	out := make([]target, 0, len(users))
	for _, inst := range slices.Sorted(maps.Keys(users)) {
		out = append(out, target{instance: inst, users: users[inst]})
	}
	return out
}
