package http

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/socialnet/social/domain"
)

func newRequestID() string { return uuid.Must(uuid.NewV7()).String() }

// requestIDs gives every request an X-Request-Id, in the response's headers and every error body
// and log line: the client's own (a gateway's, say) when it is 1..64 characters of
// [A-Za-z0-9._-], else a new one. A client's id was echoed whatever it was (500 KB were tried).
func requestIDs(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// timeout bounds the request context; database calls made with it fail with a deadline error,
// which the postgres adapter turns into EUNAVAILABLE (503).
func (s *Server) timeout(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RequestTimeout)
		defer cancel()
		c.SetRequest(c.Request().WithContext(ctx))
		err := next(c)
		if err != nil && errors.Is(err, context.DeadlineExceeded) && domain.ErrorCode(err) == domain.EINTERNAL {
			return fmt.Errorf("%w: %w", domain.Errorf(domain.EUNAVAILABLE, "request timed out"), err)
		}
		return err
	}
}

// recoverPanic turns a handler panic into a logged 500 instead of a dropped connection.
func (s *Server) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return next(c)
	}
}

// authenticate requires "Authorization: Bearer <jwt>" and stores the user id for the handler.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return domain.Errorf(domain.EUNAUTHORIZED, "missing bearer token")
		}
		claims, err := s.cfg.Tokens.Verify(strings.TrimSpace(token))
		if err != nil {
			return err
		}
		c.Set("user_id", claims.UserID)
		return next(c)
	}
}

func currentUser(c echo.Context) string {
	id, _ := c.Get("user_id").(string)
	return id
}
