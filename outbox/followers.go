package outbox

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// readPageSize is how many followers one query reads: independent of PageSize, so small messages
// (PageSize 1: one message per follower) do not mean one query per follower.
const readPageSize = 1000

// page is up to readPageSize followers of an author in user_id order, cut into messages of up to
// PageSize recipients.
type page struct {
	msgs []recipients
	// last is the keyset cursor for the next page.
	last string
	// full means the page is full, so there may be more followers after last.
	full bool
}

// recipients of one message: routing key = the first follower, CC = the others as the AMQP array
// of strings. Built once per page and shared by every message to them (all rows of an author in
// a batch use the same first page).
type recipients struct {
	key string
	cc  []interface{}
}

func newPage(ids []string, readSize, msgSize int) page {
	if len(ids) == 0 {
		return page{}
	}
	p := page{last: ids[len(ids)-1], full: len(ids) == readSize}
	for len(ids) > 0 {
		n := min(msgSize, len(ids))
		m := recipients{key: ids[0]}
		if n > 1 {
			m.cc = make([]interface{}, n-1)
			for i, id := range ids[1:n] {
				m.cc[i] = id
			}
		}
		p.msgs = append(p.msgs, m)
		ids = ids[n:]
	}
	return p
}

// firstPages reads the first page of followers of every author in one query (an index range scan
// of friendships(friend_id, user_id) per author). Authors without followers are absent. Later
// pages of big authors are streamed by nextPage, never held all at once.
func firstPages(ctx context.Context, pool *pgxpool.Pool, authors []string, pageSize int) (map[string]page, error) {
	msgSize := pageSize
	rows, err := pool.Query(ctx, `
		SELECT a.author::text, f.user_id::text
		FROM unnest($1::uuid[]) AS a(author)
		CROSS JOIN LATERAL (
			SELECT user_id FROM friendships WHERE friend_id = a.author ORDER BY user_id LIMIT $2
		) f
		ORDER BY 1, 2`, authors, readPageSize)
	if err != nil {
		return nil, fmt.Errorf("read followers: %w", err)
	}
	defer rows.Close()
	out := make(map[string]page, len(authors))
	var cur string
	var ids []string
	emit := func() {
		if cur != "" {
			out[cur] = newPage(ids, readPageSize, msgSize)
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
		WHERE friend_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3`, author, after, readPageSize)
	if err != nil {
		return page{}, fmt.Errorf("read followers page: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return page{}, fmt.Errorf("read followers page: %w", err)
	}
	return newPage(ids, readPageSize, pageSize), nil
}
