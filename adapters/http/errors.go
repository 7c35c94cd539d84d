package http

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/socialnet/social/adapters/httperr"
	"github.com/socialnet/social/domain"
)

// statusOf is the one table mapping domain error codes to HTTP statuses.
var statusOf = map[string]int{
	domain.EINVALID:      http.StatusBadRequest,
	domain.EUNAUTHORIZED: http.StatusUnauthorized,
	domain.EFORBIDDEN:    http.StatusForbidden,
	domain.ENOTFOUND:     http.StatusNotFound,
	domain.ECONFLICT:     http.StatusConflict,
	domain.ETHROTTLED:    http.StatusTooManyRequests,
	domain.EUNAVAILABLE:  http.StatusServiceUnavailable,
	domain.EINTERNAL:     http.StatusInternalServerError,
}

// handleError is echo's HTTPErrorHandler: every error a handler or middleware returns is written
// here, as httperr.Body. Internal errors are logged in full and shown as "Internal error.".
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := classify(err)
	rid := requestID(c)
	if status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "request failed",
			slog.String("request_id", rid), slog.String("route", c.Path()), slog.Int("status", status), slog.Any("err", err))
	}
	var wait time.Duration
	var te *throttledError
	if errors.As(err, &te) {
		wait = te.after
	}
	if v := httperr.RetryAfterFor(status, wait); v != "" {
		c.Response().Header().Set("Retry-After", v)
	}
	body := httperr.Body{Message: msg, RequestID: rid, Code: status}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(status)
	} else {
		err = c.JSON(status, body)
	}
	if err != nil {
		s.log.WarnContext(c.Request().Context(), "write error response", slog.Any("err", err))
	}
}

// classify picks the status and client-safe message for err: echo's own errors (unknown route,
// wrong method, body limit) keep their status, domain errors go through statusOf, anything else
// is a 500 "Internal error.".
func classify(err error) (status int, msg string) {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg = http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok && he.Code < 500 {
			msg = m
		}
		return he.Code, msg
	}
	if s, ok := statusOf[domain.ErrorCode(err)]; ok {
		return s, domain.ErrorMessage(err)
	}
	return http.StatusInternalServerError, "Internal error."
}

func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}
