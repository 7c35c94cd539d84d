package http

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/socialnet/social/domain"
)

// postResponse is a post on the wire: the OTUS fields and created_at (RFC3339, UTC), the time of
// the post.created event, as in websocket frames.
type postResponse struct {
	ID           string    `json:"id"`
	Text         string    `json:"text"`
	AuthorUserID string    `json:"author_user_id"`
	CreatedAt    time.Time `json:"created_at"`
}

func toPostResponse(p domain.Post) postResponse {
	return postResponse{ID: p.ID, Text: p.Text, AuthorUserID: p.AuthorUserID, CreatedAt: p.CreatedAt.UTC()}
}

type createPostRequest struct {
	Text *string `json:"text"`
}

// createPost answers with the new post's id as a bare JSON string (the OTUS contract). With an
// Idempotency-Key header, a retry answers the first call's id and creates nothing (design.md §2).
func (s *Server) createPost(c echo.Context) error {
	var req createPostRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Text == nil {
		return domain.Errorf(domain.EINVALID, "text is required")
	}
	if err := domain.ValidatePostText(*req.Text); err != nil {
		return err
	}
	ctx, author := c.Request().Context(), currentUser(c)
	if err := takeWrite(s.posts, author, "posts from this user"); err != nil {
		return err
	}
	var p domain.Post
	created := true
	var err error
	if keys, ok := c.Request().Header[idempotencyKeyHeader]; ok {
		p, created, err = s.cfg.Posts.CreateOnce(ctx, author, *req.Text, strings.Join(keys, ","))
	} else {
		p, err = s.cfg.Posts.Create(ctx, author, *req.Text)
	}
	if err != nil {
		return err
	}
	if created {
		s.metrics.posts.Inc()
	}
	return c.JSON(http.StatusOK, p.ID)
}

// idempotencyKeyHeader is the canonical form of the Idempotency-Key header.
var idempotencyKeyHeader = http.CanonicalHeaderKey("Idempotency-Key")

type updatePostRequest struct {
	ID   string  `json:"id"`
	Text *string `json:"text"`
}

func (s *Server) updatePost(c echo.Context) error {
	var req updatePostRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	id, err := parseID("id", req.ID)
	if err != nil {
		return err
	}
	if req.Text == nil {
		return domain.Errorf(domain.EINVALID, "text is required")
	}
	if err := domain.ValidatePostText(*req.Text); err != nil {
		return err
	}
	if err := takeWrite(s.posts, currentUser(c), "posts from this user"); err != nil {
		return err
	}
	if err := s.cfg.Posts.Update(c.Request().Context(), currentUser(c), id, *req.Text); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) deletePost(c echo.Context) error {
	id, err := parseID("id", c.Param("id"))
	if err != nil {
		return err
	}
	if err := takeWrite(s.posts, currentUser(c), "posts from this user"); err != nil {
		return err
	}
	if err := s.cfg.Posts.Delete(c.Request().Context(), currentUser(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) getPost(c echo.Context) error {
	id, err := parseID("id", c.Param("id"))
	if err != nil {
		return err
	}
	p, err := s.cfg.Posts.Post(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toPostResponse(p))
}

// ParsePage reads offset (default 0) and limit (default 10) and validates them.
func ParsePage(offset, limit string) (domain.FeedPage, error) {
	page := domain.FeedPage{Offset: 0, Limit: 10}
	var err error
	if offset != "" {
		if page.Offset, err = strconv.Atoi(offset); err != nil {
			return page, domain.Errorf(domain.EINVALID, "offset must be an integer")
		}
	}
	if limit != "" {
		if page.Limit, err = strconv.Atoi(limit); err != nil {
			return page, domain.Errorf(domain.EINVALID, "limit must be an integer")
		}
	}
	return page, page.Validate()
}

// setFriend follows user_id, under the follow throttle (FollowsPerUser a day): every attempt
// with a well-formed id takes a token, so unknown ids cannot be probed for free either.
// Unfollows are not counted: they cannot outnumber the follows made.
func (s *Server) setFriend(c echo.Context) error {
	id, err := parseID("user_id", c.Param("user_id"))
	if err != nil {
		return err
	}
	if wait := s.follows.take(currentUser(c), time.Now()); wait > 0 {
		return throttled(wait, "follows for this user")
	}
	if err := s.cfg.Friends.Set(c.Request().Context(), currentUser(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) deleteFriend(c echo.Context) error {
	id, err := parseID("user_id", c.Param("user_id"))
	if err != nil {
		return err
	}
	if err := s.cfg.Friends.Delete(c.Request().Context(), currentUser(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

// following lists the users the caller follows (an addition to OTUS: the page reads follow state
// from it instead of keeping it in the browser).
func (s *Server) following(c echo.Context) error {
	page, err := ParsePage(c.QueryParam("offset"), c.QueryParam("limit"))
	if err != nil {
		return err
	}
	users, err := s.cfg.Friends.Following(c.Request().Context(), currentUser(c), page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toUserResponses(users))
}
