package websocket

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/socialnet/social/domain"
)

// frame is one feed frame, encoded once (by the dispatcher, or by resume) and shared by every
// socket it goes to.
type frame struct {
	position  int64
	createdAt time.Time
	body      []byte
	// kind is the frame's kind (domain.FrameKind of its type): a socket forwards the kinds it
	// asked for with ?types=.
	kind string
	// live frames come from the broker; resume frames from PostgreSQL.
	live bool
	// gap frames come from a broker reconnect's gap fill (Hub.Reconnected).
	gap bool
}

// frameMeta is the part of every relayed frame (domain.FeedFrame, domain.DialogFrame) the hub
// needs: its type for ?types=, position to dedupe across a resume, created_at for the latency
// metric. The rest of the body is forwarded unread.
type frameMeta struct {
	Type      string    `json:"type"`
	Position  int64     `json:"position"`
	CreatedAt time.Time `json:"created_at"`
}

func parseFrame(body []byte) (*frame, error) {
	var m frameMeta
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("decode frame: %w", err)
	}
	return &frame{position: m.Position, createdAt: m.CreatedAt, body: body, kind: domain.FrameKind(m.Type)}, nil
}
