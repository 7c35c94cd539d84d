package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/socialnet/social/cmd/socialbench/internal/bench"
)

// Centrifugo as the side-by-side of `socialbench fanout`. Nothing of Centrifugo is in this
// repository: the operator builds it (outside the repository) and passes the binary's path. The
// bench writes a configuration file, creates Centrifugo's outbox table in the bench database and
// starts the binary as one of the system's processes.
//
// The write side is ours in both systems: posts go through `social api`'s POST /post/create,
// and for the Centrifugo runs a trigger on our outbox also writes a row of Centrifugo's outbox,
// in the same post transaction. Centrifugo's PostgreSQL consumer (LISTEN/NOTIFY, as its docs
// recommend) reads it and delivers to the websockets: one publication to the author's channel, to
// which each subscriber's socket is subscribed on connect (server-side subscription from the
// connection token's channels claim). Centrifugo keeps the follow relation in memory; ours reads
// it per post.

const centrifugoOutboxSchema = `
CREATE TABLE centrifugo_outbox (
    id         BIGSERIAL PRIMARY KEY,
    method     TEXT        NOT NULL,
    payload    BYTEA       NOT NULL,
    partition  INTEGER     NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE FUNCTION centrifugo_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('centrifugo_partition_change', NEW.partition::text);
    RETURN NEW;
END $$;
CREATE TRIGGER centrifugo_outbox_notify AFTER INSERT ON centrifugo_outbox
    FOR EACH ROW EXECUTE FUNCTION centrifugo_outbox_notify();
`

// centrifugoFeedTrigger copies each post event of our outbox into Centrifugo's, with the frame our
// realtime sends (the same fields; position is our outbox row id, as no relay assigns one).
const centrifugoFeedTrigger = `
CREATE FUNCTION centrifugo_feed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    e     events%ROWTYPE;
    frame json;
BEGIN
    SELECT * INTO e FROM events WHERE id = NEW.event_id;
    frame := json_build_object('postId', e.payload->>'post_id', 'postText', e.payload->>'text',
        'author_user_id', NEW.author_user_id, 'type', e.type, 'position', NEW.id, 'created_at', e.created_at);
    INSERT INTO centrifugo_outbox (method, payload) VALUES ('publish',
        convert_to(json_build_object('channel', 'posts_' || NEW.author_user_id, 'data', frame)::text, 'UTF8'));
    RETURN NULL;
END $$;
CREATE TRIGGER centrifugo_feed AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION centrifugo_feed();
`

// centrifugoLagQuery is the backlog of Centrifugo's outbox (its consumer deletes what it sent).
const centrifugoLagQuery = `SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)) * 1000, 0)::float8
	FROM centrifugo_outbox`

// startCentrifugo prepares the bench database and starts the Centrifugo binary beside the
// system's api. It returns the base URL and the token minter of the connections (HS256, sub = user
// id, channels = the author's channel).
func startCentrifugo(ctx context.Context, sys *bench.System, bin, author string) (string, func(string) (string, error), error) {
	conn, err := pgx.Connect(ctx, sys.DBURL)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, centrifugoOutboxSchema); err != nil {
		return "", nil, fmt.Errorf("centrifugo outbox table: %w", err)
	}
	if _, err := conn.Exec(ctx, centrifugoFeedTrigger); err != nil {
		return "", nil, fmt.Errorf("centrifugo feed trigger: %w", err)
	}

	secret := bench.RandomHex(32)
	addr := bench.FreeAddr()
	host, port, _ := strings.Cut(addr, ":")
	portN, _ := strconv.Atoi(port)
	conf := map[string]any{
		"http_server": map[string]any{"address": host, "port": portN},
		"log":         map[string]any{"level": "error"},
		"health":      map[string]any{"enabled": true},
		"client":      map[string]any{"token": map[string]any{"hmac_secret_key": secret}, "allowed_origins": []string{"*"}},
		"http_api":    map[string]any{"key": bench.RandomHex(16)},
		"consumers": []any{map[string]any{
			"name": "social_outbox", "enabled": true, "type": "postgresql",
			"postgresql": map[string]any{
				"dsn": sys.DBURL, "outbox_table_name": "centrifugo_outbox", "num_partitions": 1,
				"partition_select_limit": 100, "partition_poll_interval": "300ms",
				"partition_notification_channel": "centrifugo_partition_change",
			},
		}},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	path := filepath.Join(sys.Dir, "centrifugo.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--config", path)
	cmd.Dir = sys.Dir
	if err := sys.Spawn("centrifugo", cmd); err != nil {
		return "", nil, err
	}
	base := "http://" + addr
	if err := sys.WaitReady(ctx, base+"/health", 30*time.Second); err != nil {
		return "", nil, err
	}
	key := []byte(secret)
	mint := func(user string) (string, error) {
		return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": user, "exp": time.Now().Add(24 * time.Hour).Unix(), "channels": []string{"posts_" + author},
		}).SignedString(key)
	}
	return base, mint, nil
}

// centrifugoConnect sends Centrifugo's connect command (JSON protocol v2) and waits for its
// reply: the socket is then authenticated and subscribed (the token's channels).
func centrifugoConnect(ctx context.Context, c *websocket.Conn, cfg loadConfig, userID string) error {
	tok, err := cfg.CentrifugoToken(userID)
	if err != nil {
		return err
	}
	if err := c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"id":1,"connect":{"token":%q,"name":"socialbench"}}`, tok)); err != nil {
		return err
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(`"id":1`)) || bytes.Contains(b, []byte(`"error"`)) || !bytes.Contains(b, []byte(`"subs"`)) {
		return fmt.Errorf("connect reply %.300q", b)
	}
	return nil
}

// centrifugoVersion asks the binary for its version line.
func centrifugoVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
