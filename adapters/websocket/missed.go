package websocket

import "context"

// MissedFrames is the resume port: it reads, for a resuming client, the frames addressed to the
// user with position > after, of the event types eventTypes (the socket's ?types=, as
// domain.RelayedEventTypesOf names them), in position order, at most limit of them, each encoded
// as the relay encodes it. outbox.Resume implements it (its SQL depends on the relay's invariants, so it lives
// beside the relay's); tests use fakes.
type MissedFrames interface {
	Missed(ctx context.Context, userID string, after int64, limit int, eventTypes []string) ([][]byte, error)
}
