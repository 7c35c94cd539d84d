package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/socialnet/social/domain"
)

// MaxBodyBytes is the largest request body accepted; larger bodies get 413.
const MaxBodyBytes = 1 << 20

var errBodyTooLarge = echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", MaxBodyBytes))

// limitBody bounds every request body to MaxBodyBytes: an announced length over it is refused at
// once, and a chunked body is cut by http.MaxBytesReader, whose error decodeJSON answers with 413
// (it also tells net/http to close the connection instead of reading the rest).
func limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > MaxBodyBytes {
			return errBodyTooLarge
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, MaxBodyBytes)
		return next(c)
	}
}

// decodeJSON reads exactly one JSON object from the body into v. Unknown fields are ignored (OTUS
// clients send extras); wrong types, trailing data and non-objects are EINVALID. A body over
// MaxBodyBytes is 413; one still incomplete when the server's read timeout passes is 408.
func decodeJSON(c echo.Context, v any) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errBodyTooLarge
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return echo.NewHTTPError(http.StatusRequestTimeout, "request body not received in time")
		}
		return domain.Errorf(domain.EINVALID, "cannot read request body")
	}
	// The request is in: from here REQUEST_TIMEOUT bounds the handler and the write timeout the
	// response. Left in place, the read deadline would cancel the request's context when it passes
	// (net/http's background read of the idle connection fails), cutting a handler short for a
	// body that was merely slow to arrive.
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Time{})
	return DecodeBody(body, v)
}

// DecodeBody is the pure part of decodeJSON (fuzzed by TestFuzzDecode*).
func DecodeBody(body []byte, v any) error {
	trimmed := bytes.Trim(body, " \t\r\n") // JSON whitespace only
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return domain.Errorf(domain.EINVALID, "request body must be a JSON object")
	}
	// encoding/json would silently turn invalid UTF-8 into U+FFFD; refuse it instead.
	if !utf8.Valid(trimmed) {
		return domain.Errorf(domain.EINVALID, "request body must be valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return domain.Errorf(domain.EINVALID, "field %q must be a %s", te.Field, jsonKind(te.Type.Kind().String()))
		}
		return domain.Errorf(domain.EINVALID, "malformed JSON body")
	}
	// Body was trimmed, so anything after the object (even a stray "}") is trailing data.
	if dec.InputOffset() != int64(len(trimmed)) {
		return domain.Errorf(domain.EINVALID, "request body must hold a single JSON object")
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "int", "int64", "float64":
		return "number"
	case "bool":
		return "boolean"
	}
	return goKind
}

// parseID validates a UUID path or body parameter.
func parseID(name, v string) (string, error) {
	id, err := uuid.Parse(v)
	if err != nil || len(v) != 36 {
		return "", domain.Errorf(domain.EINVALID, "%s must be a UUID", name)
	}
	return id.String(), nil
}
