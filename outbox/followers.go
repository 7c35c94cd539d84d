package outbox

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// page is up to PageSize followers of an author in user_id order: one message's recipients.
type page struct {
	key string // routing key: the first follower
	// cc is the others as the AMQP array of strings. It is built once per page and shared by
	// every message of the page (all rows of the author in a batch use the same first page).
	cc []interface{}
	// last is the keyset cursor for the next page.
	last string
	// full means the page is full, so there may be more followers after last.
	full bool
}

func newPage(ids []string, pageSize int) page {
	if len(ids) == 0 {
		return page{}
	}
	var cc []interface{}
	if len(ids) > 1 {
		cc = make([]interface{}, len(ids)-1)
		for i, id := range ids[1:] {
			cc[i] = id
		}
	}
	return page{key: ids[0], cc: cc, last: ids[len(ids)-1], full: len(ids) == pageSize}
}

// firstPages reads the first page of followers of every author in one query (an index range scan
// of friendships(friend_id, user_id) per author). Authors without followers are absent. Later
// pages of big authors are streamed by nextPage, never held all at once.
func firstPages(ctx context.Context, pool *pgxpool.Pool, authors []string, pageSize int) (map[string]page, error) {
	rows, err := pool.Query(ctx, `
		SELECT a.author::text, f.user_id::text
		FROM unnest($1::uuid[]) AS a(author)
		CROSS JOIN LATERAL (
			SELECT user_id FROM friendships WHERE friend_id = a.author ORDER BY user_id LIMIT $2
		) f
		ORDER BY 1, 2`, authors, pageSize)
	if err != nil {
		return nil, fmt.Errorf("read followers: %w", err)
	}
	defer rows.Close()
	out := make(map[string]page, len(authors))
	var cur string
	var ids []string
	emit := func() {
		if cur != "" {
			out[cur] = newPage(ids, pageSize)
		}
	}
	for rows.Next() {
		var author, user string
		if err := rows.Scan(&author, &user); err != nil {
			return nil, fmt.Errorf("read followers: %w", err)
		}
		if author != cur {
			emit()
			cur, ids = author, ids[:0:0]
		}
		ids = append(ids, user)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read followers: %w", err)
	}
	emit()
	return out, nil
}

// nextPage reads the followers of author after the cursor (keyset paging: each page is an index
// range scan, however deep).
func nextPage(ctx context.Context, pool *pgxpool.Pool, author, after string, pageSize int) (page, error) {
	rows, err := pool.Query(ctx, `SELECT user_id::text FROM friendships
		WHERE friend_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3`, author, after, pageSize)
	if err != nil {
		return page{}, fmt.Errorf("read followers page: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return page{}, fmt.Errorf("read followers page: %w", err)
	}
	return newPage(ids, pageSize), nil
}
