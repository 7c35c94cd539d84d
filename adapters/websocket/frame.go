package websocket

import (
	"encoding/json"
	"fmt"
	"time"
)

// frame is one feed frame, encoded once (by the dispatcher, or by resume) and shared by every
// socket it goes to.
type frame struct {
	position  int64
	createdAt time.Time
	body      []byte
	// live frames come from the broker; resume frames from PostgreSQL.
	live bool
}

// frameMeta is the part of domain.FeedFrame the hub needs: position to dedupe across a resume,
// created_at for the latency metric. The rest of the body is forwarded unread.
type frameMeta struct {
	Position  int64     `json:"position"`
	CreatedAt time.Time `json:"created_at"`
}

func parseFrame(body []byte) (*frame, error) {
	var m frameMeta
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("decode frame: %w", err)
	}
	return &frame{position: m.Position, createdAt: m.CreatedAt, body: body}, nil
}
