package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/socialnet/social/domain"
)

// MaxBodyBytes is the largest request body accepted; larger bodies get 413.
const MaxBodyBytes = 1 << 20

// decodeJSON reads exactly one JSON object from the body into v. Unknown fields are ignored (OTUS
// clients send extras); wrong types, trailing data and non-objects are EINVALID.
func decodeJSON(c echo.Context, v any) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", MaxBodyBytes))
		}
		return domain.Errorf(domain.EINVALID, "cannot read request body")
	}
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
