package http

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/socialnet/social/domain"
)

// statusOf is the one table mapping domain error codes to HTTP statuses.
var statusOf = map[string]int{
	domain.EINVALID:      http.StatusBadRequest,
	domain.EUNAUTHORIZED: http.StatusUnauthorized,
	domain.EFORBIDDEN:    http.StatusForbidden,
	domain.ENOTFOUND:     http.StatusNotFound,
	domain.ECONFLICT:     http.StatusConflict,
	domain.EUNAVAILABLE:  http.StatusServiceUnavailable,
	domain.EINTERNAL:     http.StatusInternalServerError,
}

// retryAfterSeconds is sent with every 503: long enough for a pool to reconnect.
const retryAfterSeconds = "5"

// errorBody is the JSON error of design.md §2.
type errorBody struct {
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
	Code      int    `json:"code"`
}

// handleError is echo's HTTPErrorHandler: every error a handler or middleware returns is written
// here, as errorBody. Internal errors are logged in full and shown as "Internal error.".
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := http.StatusInternalServerError, "Internal error."
	var he *echo.HTTPError
	if errors.As(err, &he) {
		// Raised by echo itself: unknown route, wrong method, body limit.
		status = he.Code
		msg = http.StatusText(status)
		if m, ok := he.Message.(string); ok && status < 500 {
			msg = m
		}
	} else if code := domain.ErrorCode(err); code != "" {
		status = statusOf[code]
		msg = domain.ErrorMessage(err)
	}
	rid := requestID(c)
	if status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "request failed",
			slog.String("request_id", rid), slog.String("route", c.Path()), slog.Int("status", status), slog.Any("err", err))
	}
	if status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", retryAfterSeconds)
	}
	body := errorBody{Message: msg, RequestID: rid, Code: status}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(status)
	} else {
		err = c.JSON(status, body)
	}
	if err != nil {
		s.log.WarnContext(c.Request().Context(), "write error response", slog.Any("err", err))
	}
}

func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}
