package websocket

import (
	"context"
	"log/slog"
	"net/http"
)

// handshakeLog writes a handshake's log lines with its request's attributes: the URI (token
// redacted), the remote address and, once the token is verified, the user. It builds them only
// for a line that is written: slog.Logger.With formats them for the handler on every handshake,
// a cost connect churn pays per socket for lines that are rarely written.
type handshakeLog struct {
	log  *slog.Logger
	r    *http.Request
	user string // set once the token is verified
}

func (l *handshakeLog) Debug(msg string, attrs ...slog.Attr) { l.write(slog.LevelDebug, msg, attrs) }
func (l *handshakeLog) Info(msg string, attrs ...slog.Attr)  { l.write(slog.LevelInfo, msg, attrs) }
func (l *handshakeLog) Warn(msg string, attrs ...slog.Attr)  { l.write(slog.LevelWarn, msg, attrs) }

func (l *handshakeLog) write(level slog.Level, msg string, attrs []slog.Attr) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	all := make([]slog.Attr, 0, 3+len(attrs))
	all = append(all, slog.String("uri", redactedURI(l.r.URL)), slog.String("remote", l.r.RemoteAddr))
	if l.user != "" {
		all = append(all, slog.String("user_id", l.user))
	}
	l.log.LogAttrs(ctx, level, msg, append(all, attrs...)...)
}
