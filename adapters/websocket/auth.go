package websocket

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/httperr"
)

// subprotocolBearer is what a browser offers first, with the token as the second "protocol"
// (new WebSocket(url, ["bearer", jwt])); the server answers "bearer".
const subprotocolBearer = "bearer"

// tokenFrom finds the bearer token: Authorization header, then the subprotocol pair, then
// ?token=. viaSubprotocol tells Accept to answer "bearer".
func tokenFrom(r *http.Request) (token string, viaSubprotocol bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok), false
		}
		return "", false
	}
	var protos []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			protos = append(protos, strings.TrimSpace(p))
		}
	}
	if len(protos) >= 2 && strings.EqualFold(protos[0], subprotocolBearer) {
		return protos[1], true
	}
	return r.URL.Query().Get("token"), false
}

// originAllowed accepts non-browser clients (no Origin), the page's own host, and the configured
// origins. Anything else could be a cross-site page riding on a user's token in the URL.
func originAllowed(r *http.Request, allowed []string) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, a := range allowed {
		if strings.EqualFold(strings.TrimRight(strings.TrimSpace(a), "/"), o) {
			return true
		}
	}
	return false
}

// redactedURI is the request path and query with the token replaced, for logs.
func redactedURI(u *url.URL) string {
	q := u.Query()
	if q.Has("token") {
		q.Set("token", "REDACTED")
		return u.Path + "?" + q.Encode()
	}
	if u.RawQuery == "" {
		return u.Path
	}
	return u.Path + "?" + u.RawQuery
}

// writeError answers before the upgrade with the API's JSON error (httperr.Body), under the
// request id the API gave the request (in `all`) or a new one; a 429 or 503 waits retryAfter, or
// httperr.DefaultRetryAfter when it is 0.
func writeError(w http.ResponseWriter, status int, msg string, retryAfter time.Duration) {
	if w.Header().Get("X-Request-Id") == "" {
		w.Header().Set("X-Request-Id", uuid.Must(uuid.NewV7()).String())
	}
	httperr.Write(w, status, msg, retryAfter)
}
