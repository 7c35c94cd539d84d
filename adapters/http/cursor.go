package http

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/socialnet/social/domain"
)

// Lists of posts (the feed, a user's posts) page two ways. The OTUS way, offset and limit, costs
// as many posts read as the offset skips, so it stops at a bound (FEED_MAX_OFFSET). The other is a
// cursor: every page that may have more after it carries
//
//	Link: </post/feed?cursor=C&limit=L>; rel="next"
//	Link: </post/list?cursor=C&limit=L&user_id=U>; rel="next"
//
// and the next page is the posts older than where that one ended, found by the indexes at the
// same cost at any depth. The body stays the OTUS array; a client that ignores the header pages
// by offset as before.
//
// A cursor is opaque to clients: a version byte and the 16 bytes of the post id (UUIDv7, so in
// time order) below which the next page starts, base64url without padding. It is not signed: any
// id is a valid place to start, and a client that forges one only reads from there what it may
// read from the top.

const cursorVersion = 1

// encodeCursor is the cursor of the page that starts below post id.
func encodeCursor(id string) string {
	u := uuid.MustParse(id) // ids come from the database
	return base64.RawURLEncoding.EncodeToString(append([]byte{cursorVersion}, u[:]...))
}

// decodeCursor returns the post id a cursor names, or EINVALID for anything this server did not
// give.
func decodeCursor(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 1+16 || b[0] != cursorVersion {
		return "", domain.Errorf(domain.EINVALID, "cursor is not valid: use the one a Link header gave")
	}
	u, _ := uuid.FromBytes(b[1:]) // 16 bytes: cannot fail
	return u.String(), nil
}

// postPage reads the paging of a list of posts (/post/feed, /post/list): limit, and either
// offset (at most FeedMaxOffset: beyond it the client is told to use the cursor) or cursor.
func (s *Server) postPage(c echo.Context) (domain.FeedPage, error) {
	page, err := ParsePage(c.QueryParam("offset"), c.QueryParam("limit"))
	if err != nil {
		return page, err
	}
	// Encoded JSON is never shorter than the text it carries: a page whose texts pass the budget
	// could not be sent whole anyway, so the database stops there.
	page.MaxTextBytes = s.cfg.FeedMaxBytes
	if cursor := c.QueryParam("cursor"); cursor != "" {
		if c.QueryParam("offset") != "" {
			return page, domain.Errorf(domain.EINVALID, "offset and cursor cannot be combined: the cursor says where the page starts")
		}
		page.Before, err = decodeCursor(cursor)
		return page, err
	}
	if page.Offset > s.cfg.FeedMaxOffset {
		return page, domain.Errorf(domain.EINVALID,
			"offset must be at most %d: page further with cursor=, from the Link header of each page (rel=\"next\")", s.cfg.FeedMaxOffset)
	}
	return page, nil
}

// nextPageLink is the Link header of the page after a list of posts that ended below post id
// next: the request's path with the cursor, its limit and the parameters named in keep (a user
// id, say) as the request had them; nothing else the client sent is echoed.
func nextPageLink(c echo.Context, next string, limit int, keep ...string) string {
	q := url.Values{}
	for _, k := range keep {
		if v := c.QueryParam(k); v != "" {
			q.Set(k, v)
		}
	}
	q.Set("cursor", encodeCursor(next))
	q.Set("limit", strconv.Itoa(limit))
	return fmt.Sprintf(`<%s?%s>; rel="next"`, c.Request().URL.EscapedPath(), q.Encode())
}
