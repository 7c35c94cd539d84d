package websocket

import "context"

// MissedFrames is the resume port. outbox.Resume implements it (its SQL depends on the relay's
// invariants, so it lives beside the relay's); tests use fakes.
type MissedFrames interface {
	// Missed reads the frames addressed to the user with position > after, of the event types
	// eventTypes (the socket's ?types=, as domain.RelayedEventTypesOf names them), in position
	// order, each encoded as the relay encodes it and carrying what is true now: at most limit
	// rows read, frames stopping once they hold maxBytes (at least one). last is the position of
	// the last row read (sent or skipped), more whether rows may follow it.
	Missed(ctx context.Context, userID string, after int64, limit, maxBytes int, eventTypes []string) (frames [][]byte, last int64, more bool, err error)
	// Newest is the highest position any reader can see now; every later one is above it.
	Newest(ctx context.Context) (int64, error)
	// Gap reads what an instance missed while it had no queue: the frames with position > after
	// that go to any of users, as one feed message (domain.NewDeliveries) naming each frame's
	// recipients among users, in position order; at most limit rows read, more whether rows may
	// follow last.
	Gap(ctx context.Context, users []string, after int64, limit int) (msg []byte, last int64, more bool, err error)
}
