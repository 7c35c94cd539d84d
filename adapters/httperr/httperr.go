// Package httperr is the API's error response (design.md §2) in one place: the JSON body
// {message, request_id, code} and the Retry-After that goes with a 429 or a 503. The REST API
// (echo), the websocket handshake and the ops endpoints all answer with it, so a client parses
// one shape and honours one header whichever process refused it.
package httperr

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Body is the JSON error of design.md §2.
type Body struct {
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
	Code      int    `json:"code"`
}

// DefaultRetryAfter is the wait sent with a 503 (or a 429) that has no wait of its own: long enough
// for a database or broker pool to reconnect, short enough that a client's retry finds it back.
const DefaultRetryAfter = 5 * time.Second

// RetryAfter is d as a Retry-After value: whole seconds, rounded up, at least one (a client told
// "0" retries at once, and a wait below a second would be).
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// RetryAfterFor is the Retry-After to send with status, "" for none: a 429 or a 503 carries wait,
// or DefaultRetryAfter when wait is 0; other statuses carry none.
func RetryAfterFor(status int, wait time.Duration) string {
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return ""
	}
	if wait <= 0 {
		wait = DefaultRetryAfter
	}
	return RetryAfter(wait)
}

// Write answers with Body: msg, the request id already in w's X-Request-Id header, and status;
// a 429 or 503 gets Retry-After (see RetryAfterFor).
func Write(w http.ResponseWriter, status int, msg string, retryAfter time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if v := RetryAfterFor(status, retryAfter); v != "" {
		h.Set("Retry-After", v)
	}
	w.WriteHeader(status)
	// The status line is sent: a failed write means the client has gone, and there is no one
	// left to tell.
	_ = json.NewEncoder(w).Encode(Body{Message: msg, RequestID: h.Get("X-Request-Id"), Code: status})
}
