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
// split.size recipients, each naming followers of one lane only.
type page struct {
	msgs []recipients
	// ids are the followers of the page, in order (the messages name them too).
	ids []string
	// last is the keyset cursor for the next page.
	last string
	// full means the page is full, so there may be more followers after last.
	full bool
}

// recipients of one message: routing key = the first follower, CC = the others as the AMQP array
// of strings, lane = the publisher lane of all of them. Built once per page and shared by every
// message to them (all rows of an author in a batch use the same first page).
type recipients struct {
	key  string
	cc   []interface{}
	lane int
}

// split says how a page of followers becomes messages.
type split struct {
	size  int // followers per message (PageSize)
	lanes int // publisher lanes (1: no split)
}

// leadFollowers is how many followers the first message of a row's first page names (when
// PageSize is larger). RabbitMQ's channel process parses a message's CC header and routes every
// key before the message reaches any queue: 4.0 ms for 1,000 keys against 1.2 ms for 100
// (docs/performance.md, "Where a post's time goes"). A short first message puts the first
// hundred sockets ~3 ms sooner on screen; the rest of the page follows in full-size messages on
// the same channel, so the order per follower is unchanged. The cost is one message more per lane
// for a post with over 100 followers there, about 0.4–0.5 ms of the broker's CPU (socialbench
// broker), so only the first row of a claimed batch has it (emitBatch).
const leadFollowers = 100

// laneOf maps a follower to a publisher lane (FNV-1a of the id). Every message naming a follower
// travels on that follower's lane, i.e. one broker channel, and the broker keeps the order of a
// channel: a user's frames, of all authors, arrive in relay (position) order however the lanes
// interleave. Splitting by author instead would let a later position of one author overtake an
// earlier one of another, and a client resuming with ?since= after the later one would skip
// the earlier.
func laneOf(userID string, lanes int) int {
	if lanes <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(userID); i++ {
		h ^= uint32(userID[i])
		h *= 16777619
	}
	return int(h % uint32(lanes))
}

// newPage cuts ids into messages. lead > 0 makes each lane's first message name at most lead
// followers (a row's first page: leadFollowers).
func newPage(ids []string, readSize int, sp split, lead int) page {
	if len(ids) == 0 {
		return page{}
	}
	p := page{ids: ids, last: ids[len(ids)-1], full: len(ids) == readSize}
	byLane := [][]string{ids}
	if sp.lanes > 1 {
		byLane = make([][]string, sp.lanes)
		for _, id := range ids {
			l := laneOf(id, sp.lanes)
			byLane[l] = append(byLane[l], id)
		}
	}
	for l, lids := range byLane {
		if lead > 0 && lead < sp.size && len(lids) > lead {
			p.msgs = appendMessages(p.msgs, lids[:lead], lead, l)
			lids = lids[lead:]
		}
		p.msgs = appendMessages(p.msgs, lids, sp.size, l)
	}
	return p
}

// appendMessages cuts ids into messages of up to size recipients on lane.
func appendMessages(msgs []recipients, ids []string, size, lane int) []recipients {
	for len(ids) > 0 {
		n := min(size, len(ids))
		m := recipients{key: ids[0], lane: lane}
		if n > 1 {
			m.cc = make([]interface{}, n-1)
			for i, id := range ids[1:n] {
				m.cc[i] = id
			}
		}
		msgs = append(msgs, m)
		ids = ids[n:]
	}
	return msgs
}

// firstPage is an author's first page from the claim (claimSQL), which reads one follower more
// than a page: an author with exactly readPageSize followers is not taken for a big fan-out
// (whose pages continue on the bulk lanes). The first message is short (leadFollowers).
func firstPage(ids []string, sp split) page {
	more := len(ids) > readPageSize
	if more {
		ids = ids[:readPageSize]
	}
	p := newPage(ids, readPageSize, sp, leadFollowers)
	p.full = more
	return p
}

// unledPages are an author's first pages cut again without the lead message, for the rows of a
// batch after its first (emitBatch), made once per author and batch.
type unledPages map[string]page

func (u *unledPages) of(author string, p page, sp split) page {
	if np, ok := (*u)[author]; ok {
		return np
	}
	np := newPage(p.ids, 0, sp, 0)
	np.full, np.last = p.full, p.last
	if *u == nil {
		*u = make(unledPages)
	}
	(*u)[author] = np
	return np
}

// nextPageSQL is one keyset page of an author's followers: an index range scan of
// friendships_followers (friend_id, user_id), however deep the cursor.
//
// ORDER BY must name the uuid column (f.user_id), never the output column: "ORDER BY user_id"
// after "SELECT user_id::text" sorts by the TEXT output column of that name, which no index
// serves, so every page read all of the author's remaining followers and top-N sorted them —
// 1.8 s per page at 1,000,000 followers (a 1,000,000-follower post took 110 s), against 1.6 ms
// for the index range scan. The cursor comparison ($2) is in uuid order too, so both agree.
const nextPageSQL = `SELECT f.user_id::text FROM friendships f
	WHERE f.friend_id = $1 AND f.user_id > $2 ORDER BY f.user_id LIMIT $3`

// readPage reads up to size followers of author after the cursor (keyset paging).
func readPage(ctx context.Context, pool *pgxpool.Pool, author, after string, size int, sp split) (page, error) {
	rows, err := pool.Query(ctx, nextPageSQL, author, after, size)
	if err != nil {
		return page{}, fmt.Errorf("read followers page: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return page{}, fmt.Errorf("read followers page: %w", err)
	}
	return newPage(ids, size, sp, 0), nil
}
