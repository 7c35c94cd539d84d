package http

import (
	"encoding/json"
	"io"

	"github.com/labstack/echo/v4"
)

// newJSONEncoder is how every response is encoded: without HTML escaping. encoding/json's default
// writes `<`, `>` and `&` as 6-byte \u003c escapes, so a post of 10,000 `<` grew to 60 KB and a
// feed page to 60 MB. Responses are application/json with X-Content-Type-Options: nosniff, never
// read as HTML, so the escaping protects nothing.
func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// jsonSerializer is echo's JSON serializer with newJSONEncoder.
type jsonSerializer struct{ echo.DefaultJSONSerializer }

func (jsonSerializer) Serialize(c echo.Context, v any, indent string) error {
	enc := newJSONEncoder(c.Response())
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(v)
}
