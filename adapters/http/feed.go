package http

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/socialnet/social/domain"
)

// DefaultRequestTimeout is Config.RequestTimeout when unset: well above a healthy request's
// milliseconds, well below a client's patience.
const DefaultRequestTimeout = 5 * time.Second

// DefaultFeedMaxBytes is the default bound of a /post/feed or /post/list response body.
const DefaultFeedMaxBytes = 1 << 20

// DefaultFeedMaxOffset is the default of the largest /post/feed and /post/list offset: the newest
// 1,000 posts and a page, what the OTUS course's cached feed holds and more than Twitter's home
// timeline served (800); deeper pages are read by cursor.
const DefaultFeedMaxOffset = 1000

// MinFeedMaxBytes is the smallest bound accepted: the largest post (10,000 characters that JSON
// escapes to 6 bytes each, plus its ids) fits in it, so a page never needs to be cut to nothing.
const MinFeedMaxBytes = 64 << 10

func (s *Server) feed(c echo.Context) error {
	page, err := s.postPage(c)
	if err != nil {
		return err
	}
	posts, next, err := s.cfg.Posts.Feed(c.Request().Context(), currentUser(c), page)
	if err != nil {
		return err
	}
	return writePosts(c, page, posts, next, s.cfg.FeedMaxBytes)
}

// postList is GET /post/list?user_id=: that user's posts, newest first, paged as the feed (an
// addition to OTUS: the page shows your own posts from it, in every browser).
func (s *Server) postList(c echo.Context) error {
	author, err := parseID("user_id", c.QueryParam("user_id"))
	if err != nil {
		return err
	}
	page, err := s.postPage(c)
	if err != nil {
		return err
	}
	posts, next, err := s.cfg.Posts.ByAuthor(c.Request().Context(), author, page)
	if err != nil {
		return err
	}
	return writePosts(c, page, posts, next, s.cfg.FeedMaxBytes, "user_id")
}

// writePosts sends a page of a list of posts (the feed, a user's posts) as a JSON array of at
// most maxBytes (always at least one post). It encodes twice, one post at a time, instead of
// building the body: the first pass finds how many posts fit, so the status, Content-Length and
// the Link to the next page go out first; the second streams them, and drops each post once
// written. A response thus holds its posts' texts plus one post's encoding, whatever its size and
// however slowly the client reads (the write timeout ends a client that does not read).
//
// When the list may go on (next is set, or the page is cut here for its size) the response
// carries the Link to the next page (cursor.go); keep names the query parameters the Link
// repeats.
func writePosts(c echo.Context, page domain.FeedPage, posts []domain.Post, next string, maxBytes int, keep ...string) error {
	var enc postEncoder
	size := len("[]\n")
	for i, p := range posts {
		n := len(enc.encode(p))
		if i > 0 {
			n++ // the comma
		}
		if i > 0 && size+n > maxBytes {
			posts, next = posts[:i], posts[i-1].ID
			break
		}
		size += n
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	h.Set(echo.HeaderContentLength, strconv.Itoa(size))
	if next != "" {
		h.Set("Link", nextPageLink(c, next, page.Limit, keep...))
	}
	c.Response().WriteHeader(http.StatusOK)
	w := c.Response()
	if _, err := w.Write([]byte("[")); err != nil {
		return err
	}
	for i := range posts {
		if i > 0 {
			if _, err := w.Write([]byte(",")); err != nil {
				return err
			}
		}
		b := enc.encode(posts[i])
		posts[i] = domain.Post{} // encoded: its text need not stay while the rest goes out
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	_, err := w.Write([]byte("]\n"))
	return err
}

// postEncoder encodes one post at a time into a reused buffer, without HTML escaping.
type postEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

func (e *postEncoder) encode(p domain.Post) []byte {
	if e.enc == nil {
		e.enc = newJSONEncoder(&e.buf)
	}
	e.buf.Reset()
	_ = e.enc.Encode(toPostResponse(p)) // strings only: cannot fail
	return bytes.TrimSuffix(e.buf.Bytes(), []byte("\n"))
}
