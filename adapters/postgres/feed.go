package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/socialnet/social/domain"
)

// A feed page is read one of two ways, chosen by how many users the reader follows (counted up to
// feedByAuthorMaxFollows, so the count costs no more than that):
//
//   - by author, up to feedByAuthorMaxFollows follows: the newest posts below the cursor of each
//     followed author (posts_author_id, ids only), merged. It reads at most a page and its offset
//     per author, however rarely they post.
//   - newest first, beyond: the newest posts below the cursor of everyone (posts_pkey), keeping
//     those whose author the reader follows (one probe of friendships_pkey each). A reader of many
//     authors finds a page among few posts; a page stops after feedScanMaxPosts posts read even
//     when it is not full, and says where to go on.
//
// Either way a page's cost depends on its size and the reader's graph, not on how deep it is: the
// cursor is a post id, found by the indexes. Each way has one plan whatever PostgreSQL caches: the
// lateral join cannot be turned around and the sub-select in the filter cannot become a join, so a
// generic plan (made for an average reader after five runs) is the one a custom plan would be
// (TestFeedPlansDoNotGrowWithDepth). The single query they replaced let the planner pick per
// reader: its generic plan, made for an average reader, merged 100,000 authors' posts for a
// reader who followed that many (6 s here), and OFFSET read every post it skipped.
const (
	feedByAuthorMaxFollows = 1000
	feedScanMaxPosts       = 10_000
)

// feedFollowsSQL counts the reader's follows up to feedByAuthorMaxFollows+1.
var feedFollowsSQL = fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM friendships WHERE user_id = $1 LIMIT %d) f`,
	feedByAuthorMaxFollows+1)

// The two ways of choosing a page's ids: $1 the reader, $2 the cursor (only ids below it), $3 the
// offset, $4 the limit. One more id than the limit tells whether the feed goes on.
const feedByAuthorSQL = `SELECT p.id FROM friendships f CROSS JOIN LATERAL (
		SELECT id FROM posts WHERE author_user_id = f.friend_id AND id < $2
		ORDER BY id DESC LIMIT $3::int + $4::int + 1) p
	WHERE f.user_id = $1 ORDER BY p.id DESC OFFSET $3::int LIMIT $4::int + 1`

var feedNewestSQL = fmt.Sprintf(`SELECT s.id FROM (
		SELECT id, author_user_id FROM posts WHERE id < $2 ORDER BY id DESC LIMIT %d) s
	WHERE (SELECT true FROM friendships f WHERE f.user_id = $1 AND f.friend_id = s.author_user_id)
	ORDER BY s.id DESC OFFSET $3::int LIMIT $4::int + 1`, feedScanMaxPosts)

// postPageSQL reads the posts of the chosen ids (the feed's, or one author's: posts.go), one
// posts_pkey probe each (the LIMIT keeps the lateral sub-select from becoming a join the planner
// could serve by reading all of posts), and cuts the page by the running sum of the texts' sizes
// ($5), so a cut page's texts are never sent to us; fetched is how many ids there were (more than
// the posts returned: the list goes on).
const postPageSQL = `SELECT id, text, author_user_id, created_at, fetched FROM (
		SELECT page.id, p.text, p.author_user_id, p.created_at, sum(octet_length(p.text)) OVER w AS upto,
			row_number() OVER w AS n, count(*) OVER () AS fetched
		FROM (%s) page CROSS JOIN LATERAL (
			SELECT text, author_user_id, created_at FROM posts WHERE id = page.id LIMIT 1) p
		WINDOW w AS (ORDER BY page.id DESC)
	) sized WHERE n <= $4::int AND (n = 1 OR upto <= $5) ORDER BY id DESC`

// feedScanEndSQL is where a newest-first page's read stopped: the oldest of the
// feedScanMaxPosts posts below the cursor, when there are that many (no row when fewer).
var feedScanEndSQL = fmt.Sprintf(`SELECT id FROM posts WHERE id < $1 ORDER BY id DESC OFFSET %d LIMIT 1`,
	feedScanMaxPosts-1)

// feedQuery is the SQL of a feed page read by author (else newest first); its arguments are
// (reader, cursor, offset, limit, max text bytes).
func feedQuery(byAuthor bool) string {
	if byAuthor {
		return fmt.Sprintf(postPageSQL, feedByAuthorSQL)
	}
	return fmt.Sprintf(postPageSQL, feedNewestSQL)
}

// maxPostID is above every post id: the cursor of the newest page.
var maxPostID = uuid.Max

// Feed returns the newest posts of the users userID follows below page.Before, in one snapshot
// under the read timeout.
func (s *PostService) Feed(ctx context.Context, userID string, page domain.FeedPage) ([]domain.Post, string, error) {
	before, maxBytes, err := pageBounds(page)
	if err != nil {
		return nil, "", err
	}
	var posts []domain.Post
	var next string
	err = s.reads.read(ctx, func(tx pgx.Tx) error {
		var follows int
		if err := tx.QueryRow(ctx, feedFollowsSQL, userID).Scan(&follows); err != nil {
			return err
		}
		byAuthor := follows <= feedByAuthorMaxFollows
		var err error
		posts, next, err = readPostPage(ctx, tx, feedQuery(byAuthor), userID, before, page.Offset, page.Limit, maxBytes)
		if err != nil || next != "" || byAuthor {
			return err
		}
		// Not a full page: either the feed ended or the read stopped at its bound.
		var end uuid.UUID
		switch err := tx.QueryRow(ctx, feedScanEndSQL, before).Scan(&end); {
		case err == nil:
			next = end.String()
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		return nil
	})
	if err != nil {
		return nil, "", translate(err, "feed")
	}
	return posts, next, nil
}

// pageBounds validates a page of a list of posts and returns its cursor (maxPostID for the newest
// page) and its bound on text bytes.
func pageBounds(page domain.FeedPage) (before uuid.UUID, maxBytes int64, err error) {
	if err := page.Validate(); err != nil {
		return before, 0, err
	}
	before = maxPostID
	if page.Before != "" {
		if before, err = uuid.Parse(page.Before); err != nil {
			return before, 0, domain.Errorf(domain.EINVALID, "cursor is not a post id")
		}
	}
	maxBytes = int64(math.MaxInt64)
	if page.MaxTextBytes > 0 {
		maxBytes = int64(page.MaxTextBytes)
	}
	return before, maxBytes, nil
}

// readPostPage runs a postPageSQL query in tx: the page's posts, and next, the id below which the
// list goes on, when more ids were found than posts returned (a full page with more after it, or
// one cut for its size).
func readPostPage(ctx context.Context, tx pgx.Tx, query string, args ...any) (posts []domain.Post, next string, err error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, "", err
	}
	var fetched int
	posts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Post, error) {
		var p domain.Post
		var id, author uuid.UUID
		err := r.Scan(&id, &p.Text, &author, &p.CreatedAt, &fetched)
		p.ID, p.AuthorUserID = id.String(), author.String()
		return p, err
	})
	if err != nil {
		return nil, "", err
	}
	if fetched > len(posts) {
		next = posts[len(posts)-1].ID
	}
	return posts, next, nil
}
