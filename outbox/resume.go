package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
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

// ResumeWindow bounds the outbox rows one resume page reads, however many authors the user
// follows (design.md §4: a resume's cost is bounded by its page). A page walks the outbox in
// position order, one friendship probe per row, through at most this many positions
// (resumeByPositionSQL), unless the user follows at most this many authors and more positions than
// this remain: then it reads each followed author's next positions (resumeByFollowsSQL). Either way
// a page costs about this many index probes, never one per follow of the user: a resume page that
// expanded every follow made each reconnect of a user following many authors a query over all of
// them.
const ResumeWindow = 1000

// resumeWalkSQL says whether the page after $2 for user $1 walks the outbox (resumeByPositionSQL):
// the user follows more than $3 authors (read: at most $3 + 1 entries of the friendships primary
// key), or at most $3 positions remain.
const resumeWalkSQL = `SELECT (SELECT count(*) FROM (SELECT 1 FROM friendships WHERE user_id = $1 LIMIT $3::int + 1) s) > $3::int
	OR ` + resumeNewest + ` - $2::bigint <= $3::int`

// A resume page reads the frames with a position in ($2, hi] addressed to user $1, of the event
// types $4 (NULL: every type), in position order, at most $3: the rows of the authors the user
// follows now (no recipients on the row: the domain's followers rule) and the rows that name the
// user among their recipients. hi is the end of what the page covers: the newest position readable
// in the page's snapshot, or less when the page's bound stopped it (every row of the user's up to
// hi is in the page, up to $3). Each row carries hi and that newest position.
//
// The in-flight positions matter: a frame may reach the broker before its row is marked, and the
// live copy of a frame published before the client's presence existed never reaches it. One
// statement, one snapshot: the mark moves a batch's positions into outbox in one transaction, so
// each frame is read from exactly one of the two places. outbox_inflight names a row by event id
// and author; its outbox row says which rule it follows.
//
// Each probe of friendships or of outbox by position below is a scalar subquery or a LATERAL one
// with a LIMIT, which no plan turns into a hash of all the user's follows or of the outbox: the
// bounds hold for generic plans as well as custom ones.
const (
	// resumeNewest is the newest position readable now (as Newest).
	resumeNewest = `greatest((SELECT max(position) FROM outbox),
	                  (SELECT max(p) FROM outbox_inflight, unnest(positions) AS p), 0)`
	// resumeType keeps the rows whose event e is of a type asked for.
	resumeType = `($4::text[] IS NULL OR e.type = ANY ($4::text[]))`
	// resumeFrames turns the page's positions (x: pos, event_id) into what the frames carry, true
	// now; a page without rows is one row of NULLs after hi and newest.
	resumeFrames = `
		SELECT w.hi, w.newest, x.pos, e.type, e.payload, e.created_at, cur.text
		FROM w LEFT JOIN LATERAL (%s) x ON true
		LEFT JOIN events e ON e.id = x.event_id
		LEFT JOIN aggregate_now cur ON cur.aggregate_id = e.aggregate_id
		ORDER BY x.pos`
)

// resumeInflight are the rows in flight in ($2, w.hi] for the user, of the types asked for.
var resumeInflight = `
		SELECT c.pos, c.event_id
		FROM outbox_inflight b
		CROSS JOIN LATERAL unnest(b.positions, b.event_ids, b.authors) AS c(pos, event_id, author)
		JOIN outbox r ON r.event_id = c.event_id
		JOIN events e ON e.id = c.event_id
		WHERE c.pos > $2 AND c.pos <= w.hi
		  AND ` + isForSQL("$1", "c.author", "r.recipients") + `
		  AND (r.recipients IS NULL OR r.status = 'pending')
		  AND ` + resumeType

// resumeByFollowsSQL is the page for a user who follows few authors (ResumeWindow at most): the
// first $3 positions above $2 of each followed author (outbox_author_position, index only), the
// first $3 of them all; when there are $3, the page ends at the last of them (hi): a later row of
// one followed author may come before another's next one. The user's named rows (dialog messages)
// come from the partial GIN index of positioned rows with recipients (a CTE of their own, so that no
// plan reads the outbox by position through the page's stretch for them); their cost follows the
// messages the user has received since $2, not the page.
var resumeByFollowsSQL = fmt.Sprintf(`
	WITH candidates AS MATERIALIZED (
		SELECT p.position FROM friendships f
		CROSS JOIN LATERAL (
			SELECT o.position FROM outbox o
			WHERE o.author_user_id = f.friend_id AND o.position > $2
			ORDER BY o.position LIMIT $3
		) p
		WHERE f.user_id = $1
		ORDER BY p.position LIMIT $3
	), named AS MATERIALIZED (
		SELECT o.position, o.event_id FROM outbox o
		WHERE o.recipients @> ARRAY[$1::uuid] AND o.recipients IS NOT NULL AND o.position IS NOT NULL
		  AND o.position > $2 AND o.status <> 'dead'
	), w AS MATERIALIZED (
		SELECT n.at AS newest,
		       CASE WHEN (SELECT count(*) FROM candidates) = $3
		            THEN least((SELECT max(position) FROM candidates), n.at) ELSE n.at END AS hi
		FROM (SELECT %s AS at) n
	)`+resumeFrames, resumeNewest, `
		SELECT u.pos, u.event_id FROM (
			SELECT o.position AS pos, o.event_id
			FROM candidates c
			CROSS JOIN LATERAL (
				SELECT o.position, o.event_id, o.recipients, o.status FROM outbox o WHERE o.position = c.position LIMIT 1
			) o
			JOIN events e ON e.id = o.event_id
			WHERE o.recipients IS NULL AND o.status <> 'dead' AND `+resumeType+`
			UNION ALL
			SELECT n.position, n.event_id
			FROM named n
			JOIN events e ON e.id = n.event_id
			WHERE n.position <= w.hi AND `+resumeType+`
			UNION ALL`+resumeInflight+`
		) u
		ORDER BY u.pos
		LIMIT $3`)

// resumeByPositionSQL is the page for a user who follows many authors, or near the newest
// position: the outbox walked in position order through ($2, $2 + $5], each row probed (the
// friendships primary key for a row of the followers rule, its recipients otherwise), stopping at
// $3 rows. It reads at most $5 rows whatever the user follows; a stretch of the outbox with
// nothing for the user costs pages that each end at hi = $2 + $5 (or the newest position) with
// fewer than $3 rows.
var resumeByPositionSQL = fmt.Sprintf(`
	WITH w AS MATERIALIZED (
		SELECT n.at AS newest, least($2::bigint + $5::bigint, n.at) AS hi FROM (SELECT %s AS at) n
	)`+resumeFrames, resumeNewest, `
		SELECT u.pos, u.event_id FROM (
			(SELECT o.position AS pos, o.event_id
			FROM outbox o
			JOIN events e ON e.id = o.event_id
			WHERE o.position > $2 AND o.position <= w.hi AND o.status <> 'dead'
			  AND `+isForSQL("$1", "o.author_user_id", "o.recipients")+`
			  AND `+resumeType+`
			ORDER BY o.position
			LIMIT $3)
			UNION ALL`+resumeInflight+`
		) u
		ORDER BY u.pos
		LIMIT $3`)

// Missed returns the encoded frames (domain.EncodeFrame, the relay's encoder) after position
// after addressed to userID, of the event types eventTypes only (nil: every type; a socket that
// asked for post frames only, the default ?types=, passes the post types, so its pages are never
// filled with frames it would drop), in position order: at most limit rows are read, and frames
// stop once they hold maxBytes (at least one frame is returned), so a resume holds one bounded page
// per socket whatever the posts weigh. last is the position of the last row read — sent or
// skipped — or the end of the stretch the page covered, and more says rows may follow it: the next
// page starts after last. A page may hold fewer than limit frames with more rows to come (its
// reading bound, ResumeWindow, stopped it); its cost is bounded by that, not by how many authors
// userID follows.
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
	var walk bool
	if err := m.pool.QueryRow(ctx, resumeWalkSQL, userID, after, ResumeWindow).Scan(&walk); err != nil {
		return nil, 0, false, fmt.Errorf("choose how to read missed frames: %w", err)
	}
	// An unnamed statement (CacheDescribe) is planned with the actual user and position every
	// time; the bounds above hold for any plan.
	sql, args := resumeByFollowsSQL, []any{userID, after, limit, eventTypes}
	if walk {
		sql, args = resumeByPositionSQL, append(args, ResumeWindow)
	}
	rows, err := m.pool.Query(ctx, sql, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
	if err != nil {
		return nil, 0, false, fmt.Errorf("read missed frames: %w", err)
	}
	defer rows.Close()
	last = after
	var hi, newest int64
	var n, size int
	for rows.Next() {
		var r frameRow
		var pos pgtype.Int8
		var typ pgtype.Text
		var at pgtype.Timestamptz
		if err := rows.Scan(&hi, &newest, &pos, &typ, &r.payload, &at, &r.now); err != nil {
			return nil, 0, false, fmt.Errorf("scan missed frame: %w", err)
		}
		if !pos.Valid {
			break // the page's one row when it has none
		}
		r.pos, r.typ, r.at = pos.Int64, typ.String, at.Time
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
	if n == limit {
		return frames, last, true, nil
	}
	// Every row of the user's up to hi was read.
	return frames, max(last, hi), hi < newest, nil
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
