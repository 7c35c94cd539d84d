package websocket

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/domain"
)

// MissedFrames reads, for a resuming client, the frames of the users it follows with position >
// after, in position order, at most limit of them.
type MissedFrames interface {
	Missed(ctx context.Context, userID string, after int64, limit int) ([][]byte, error)
}

type pgMissed struct{ pool *pgxpool.Pool }

// Missed reads outbox rows that have a position (claimed or relayed: a claimed row may already be
// published, and the live frame of a row published before our binding existed would otherwise be
// lost), joined with their event and filtered by the user's current friendships.
//
// Failure modes: a row whose publish later fails gets a new position and is sent again (clients
// dedupe by postId+type); a friendship removed since the post was relayed hides its frames.
func (m *pgMissed) Missed(ctx context.Context, userID string, after int64, limit int) ([][]byte, error) {
	rows, err := m.pool.Query(ctx, `
		SELECT o.position, e.type, e.payload, e.created_at
		FROM friendships f
		JOIN outbox o ON o.author_user_id = f.friend_id
		JOIN events e ON e.id = o.event_id
		WHERE f.user_id = $1 AND o.position > $2 AND o.status <> 'dead'
		ORDER BY o.position
		LIMIT $3`, userID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read missed frames: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var (
			pos     int64
			typ     string
			payload []byte
			at      time.Time
		)
		if err := rows.Scan(&pos, &typ, &payload, &at); err != nil {
			return nil, fmt.Errorf("scan missed frame: %w", err)
		}
		var p domain.PostChanged
		if err := json.Unmarshal(payload, &p); err != nil {
			return nil, fmt.Errorf("decode %s payload at position %d: %w", typ, pos, err)
		}
		b, err := json.Marshal(domain.NewFeedFrame(typ, p, pos, at))
		if err != nil {
			return nil, fmt.Errorf("encode frame: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read missed frames: %w", err)
	}
	return out, nil
}
