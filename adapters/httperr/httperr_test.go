package httperr

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestRetryAfterIsWholeSecondsRoundedUpAtLeastOne(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                       "1",
		time.Millisecond:        "1",
		time.Second:             "1",
		1500 * time.Millisecond: "2",
		time.Minute:             "60",
	} {
		if got := RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestWriteAnswersTheAPIErrorBody(t *testing.T) {
	for _, tc := range []struct {
		status     int
		wait       time.Duration
		retryAfter string
	}{
		{http.StatusBadRequest, 0, ""},
		{http.StatusBadRequest, time.Minute, ""},
		{http.StatusTooManyRequests, 2500 * time.Millisecond, "3"},
		{http.StatusTooManyRequests, 0, "5"},
		{http.StatusServiceUnavailable, 0, "5"},
	} {
		rec := httptest.NewRecorder()
		rec.Header().Set("X-Request-Id", "rid-1")
		Write(rec, tc.status, "no", tc.wait)
		want := `{"message":"no","request_id":"rid-1","code":` + strconv.Itoa(tc.status) + "}\n"
		if rec.Code != tc.status || rec.Body.String() != want {
			t.Errorf("Write(%d): %d %q, want %d %q", tc.status, rec.Code, rec.Body.String(), tc.status, want)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Write(%d): Content-Type %q", tc.status, ct)
		}
		if got := rec.Header().Get("Retry-After"); got != tc.retryAfter {
			t.Errorf("Write(%d, %s): Retry-After %q, want %q", tc.status, tc.wait, got, tc.retryAfter)
		}
	}
}
