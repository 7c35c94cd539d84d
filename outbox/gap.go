package outbox

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/socialnet/social/domain"
)

// gapSQL reads the rows with a position above $2, in position order, at most $3, each with the
// users of $1 it is for: its author's followers among them, or its named recipients among them.
// Relayed (or re-enqueued) rows are read from outbox, rows in flight from outbox_inflight, as resume
// reads them. The recipients are a primary-key probe of friendships per user and row, so a gap is
// read for a bounded number of rows ($3) and the caller falls back to per-socket resumes beyond.
var gapSQL = `
		SELECT x.pos, e.type, e.payload, e.created_at, cur.text, t.users
		FROM (
			SELECT * FROM (
				SELECT o.position AS pos, o.event_id, o.author_user_id AS author, o.recipients
				FROM outbox o
				WHERE o.position > $2 AND o.status <> 'dead'
				UNION ALL
				SELECT c.pos, c.event_id, c.author, r.recipients
				FROM outbox_inflight b
				CROSS JOIN LATERAL unnest(b.positions, b.event_ids, b.authors) AS c(pos, event_id, author)
				LEFT JOIN outbox r ON r.event_id = c.event_id
				WHERE c.pos > $2
			) u ORDER BY pos LIMIT $3
		) x
		JOIN events e ON e.id = x.event_id
		LEFT JOIN aggregate_now cur ON cur.aggregate_id = e.aggregate_id
		CROSS JOIN LATERAL (
			SELECT array_agg(u::text) AS users FROM unnest($1::uuid[]) AS u
			WHERE ` + isForSQL("u", "x.author", "x.recipients") + `
		) t
		ORDER BY x.pos`

// Gap reads what one realtime instance missed while it had no queue: every frame with a position
// above after that goes to any of users (the instance's users), as a feed message
// (domain.NewDeliveries) naming each frame's recipients among them, in position order and true
// now, as the relay would have sent it. At most limit rows are read; more says rows may follow
// last (the caller then resumes socket by socket instead).
func (m *Resume) Gap(ctx context.Context, users []string, after int64, limit int) (msg []byte, last int64, more bool, err error) {
	rows, err := m.pool.Query(ctx, gapSQL, pgx.QueryExecModeCacheDescribe, users, after, limit)
	if err != nil {
		return nil, 0, false, fmt.Errorf("read the gap: %w", err)
	}
	defer rows.Close()
	msg, last = domain.NewDeliveries(nil), after
	n := 0
	for rows.Next() {
		var r frameRow
		var to []string
		if err := rows.Scan(&r.pos, &r.typ, &r.payload, &r.at, &r.now, &to); err != nil {
			return nil, 0, false, fmt.Errorf("scan the gap: %w", err)
		}
		n++
		last = r.pos
		if len(to) == 0 {
			continue
		}
		b, err := r.encode()
		if err != nil {
			return nil, 0, false, err
		}
		if b == nil {
			continue
		}
		msg = domain.AppendDelivery(msg, b, to)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, fmt.Errorf("read the gap: %w", err)
	}
	return msg, last, n == limit, nil
}
