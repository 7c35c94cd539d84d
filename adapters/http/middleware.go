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
