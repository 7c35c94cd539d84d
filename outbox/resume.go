package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/domain"
)

// Resume reads, for a realtime client resuming with ?since=N, the frames it missed. Its SQL lives
// here, beside the claim and the mark, because it depends on their invariants (doc.go): positions
// grow in relay order, and every position handed out is readable in exactly one place, the outbox
// row (relayed, or re-enqueued by a replay) or its claimed batch's outbox_inflight row (published,
// not yet marked). adapters/websocket calls it through its MissedFrames port.
type Resume struct{ pool *pgxpool.Pool }

// NewResume returns the resume source on pool.
func NewResume(pool *pgxpool.Pool) *Resume { return &Resume{pool: pool} }

// resumeSQL reads the frames with a position above $2 addressed to user $1, of the event types $4
// (NULL: every type), in position order, at most $3: the rows of the authors the user follows now (no recipients on the row: the domain's
// followers rule) and the rows that name the user among their recipients. The in-flight
// positions matter: a frame may reach the broker before its row is marked, and the live copy of a
// frame published before the client's binding existed never reaches it. One statement, one
// snapshot: the mark moves a batch's positions into outbox in one transaction, so each frame is
// read from exactly one of the two places.
//
// outbox_inflight names a row by event id and author only; an in-flight row with recipients is
// found through the small partial index of pending rows with recipients instead, and excluded
// from its author's followers' branch (one probe of the event id per row that branch returns).
const resumeSQL = `
		SELECT x.pos, e.type, e.payload, e.created_at, cur.text
		FROM (
			SELECT o.position AS pos, o.event_id
			FROM friendships f
			JOIN outbox o ON o.author_user_id = f.friend_id
			WHERE f.user_id = $1 AND o.position > $2 AND o.status <> 'dead' AND o.recipients IS NULL
			UNION ALL
			SELECT o.position, o.event_id
			FROM outbox o
			WHERE o.recipients @> ARRAY[$1::uuid] AND o.recipients IS NOT NULL AND o.position IS NOT NULL
			  AND o.position > $2 AND o.status <> 'dead'
			UNION ALL
			SELECT c.pos, c.event_id
			FROM outbox_inflight b
			CROSS JOIN LATERAL unnest(b.positions, b.event_ids, b.authors) AS c(pos, event_id, author)
			JOIN friendships f ON f.friend_id = c.author AND f.user_id = $1
			WHERE c.pos > $2
			  AND NOT EXISTS (SELECT 1 FROM outbox r WHERE r.event_id = c.event_id AND r.recipients IS NOT NULL)
			UNION ALL
			SELECT c.pos, c.event_id
			FROM (SELECT event_id FROM outbox
			      WHERE recipients @> ARRAY[$1::uuid] AND recipients IS NOT NULL AND status = 'pending') o
			JOIN (SELECT c.pos, c.event_id FROM outbox_inflight b
			      CROSS JOIN LATERAL unnest(b.positions, b.event_ids) AS c(pos, event_id)) c ON c.event_id = o.event_id
			WHERE c.pos > $2
		) x
		JOIN events e ON e.id = x.event_id
		LEFT JOIN aggregate_now cur ON cur.aggregate_id = e.aggregate_id
		WHERE $4::text[] IS NULL OR e.type = ANY($4::text[])
		ORDER BY x.pos
		LIMIT $3`

// Missed returns the encoded frames (domain.EncodeFrame, the relay's encoder) after position
// after addressed to userID, of the event types eventTypes only (nil: every type; a socket that
// asked for post frames only, the default ?types=, passes the post types, so its pages are never
// filled with frames it would drop), in position order: at most limit rows are read, and frames stop once
// they hold maxBytes (at least one frame is returned), so a resume holds one bounded page per
// socket whatever the posts weigh. last is the position of the last row read — sent or skipped —
// and more says rows may follow it: the next page starts after last.
//
// Each frame carries what is true now (aggregate_now): an edited post its current text, a deleted
// post only its tombstone (its earlier frames are skipped), as the relay does for a backlog or a
// replay.
//
// Failure modes: a row whose publish later fails gets a new position and is sent again (clients
// dedupe by postId+type); a friendship removed since the post was relayed hides its frames; an
// event the domain does not relay (a type unknown to this version) is skipped, as the relay
// refuses it.
func (m *Resume) Missed(ctx context.Context, userID string, after int64, limit, maxBytes int, eventTypes []string) (frames [][]byte, last int64, more bool, err error) {
	// An unnamed statement (CacheDescribe) is planned with the actual user and position every
	// time. A cached generic plan, which pgx's default named statements get after five runs,
	// started two parallel workers for every resume: 9.5 ms near the head instead of 0.4.
	rows, err := m.pool.Query(ctx, resumeSQL, pgx.QueryExecModeCacheDescribe, userID, after, limit, eventTypes)
	if err != nil {
		return nil, 0, false, fmt.Errorf("read missed frames: %w", err)
	}
	defer rows.Close()
	last = after
	var n, size int
	for rows.Next() {
		var r frameRow
		if err := rows.Scan(&r.pos, &r.typ, &r.payload, &r.at, &r.now); err != nil {
			return nil, 0, false, fmt.Errorf("scan missed frame: %w", err)
		}
		n++
		last = r.pos
		b, err := r.encode()
		if err != nil {
			return nil, 0, false, err
		}
		if b == nil {
			continue
		}
		frames = append(frames, b)
		if size += len(b); size >= maxBytes {
			// The rest of this query's rows are dropped unread by Close: the next page
			// starts after last.
			return frames, last, true, nil
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, fmt.Errorf("read missed frames: %w", err)
	}
	return frames, last, n == limit, nil
}

// Newest is the highest position a reader can see now: relayed (or re-enqueued) rows and batches
// in flight, in one snapshot. Every position handed out later is above it: only the leader
// numbers rows, one claim after another, and a claim's positions become visible when it commits.
// (outbox_position_seq's last_value would not do: nextval is not transactional, so it may count
// a claim that has not committed, whose rows a client told to go on from there would miss.)
func (m *Resume) Newest(ctx context.Context) (int64, error) {
	var p int64
	err := m.pool.QueryRow(ctx, `SELECT greatest(
		(SELECT max(position) FROM outbox),
		(SELECT max(p) FROM outbox_inflight, unnest(positions) AS p), 0)`).Scan(&p)
	if err != nil {
		return 0, fmt.Errorf("read the newest position: %w", err)
	}
	return p, nil
}

// gapSQL reads the rows with a position above $2, in position order, at most $3, each with the
// users of $1 it is for: its author's followers among them, or its named recipients among them.
// Relayed (or re-enqueued) rows are read from outbox, rows in flight from outbox_inflight, as in
// resumeSQL. The recipients are a primary-key probe of friendships per user and row, so a gap is
// read for a bounded number of rows ($3) and the caller falls back to per-socket resumes beyond.
const gapSQL = `
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
			WHERE CASE WHEN x.recipients IS NULL
			           THEN EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = u AND f.friend_id = x.author)
			           ELSE u = ANY(x.recipients) END
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

// frameRow is an event read for a resume or a gap, with its position and what is true now.
type frameRow struct {
	pos     int64
	typ     string
	payload []byte
	at      time.Time
	now     *string
}

// encode is the row's frame as the relay encodes it; nil (no error) for a row that sends nothing:
// an event type this version does not relay, or a post deleted since (superseded).
func (r frameRow) encode() ([]byte, error) {
	b, err := domain.EncodeFrame(r.typ, r.payload, r.pos, r.at, nowOf(r.now))
	if errors.Is(err, domain.ErrUnknownEventType) || errors.Is(err, domain.ErrSuperseded) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("frame at position %d: %w", r.pos, err)
	}
	return b, nil
}
