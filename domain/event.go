package domain

import "time"

// Event types appended to the event store.
const (
	EventUserRegistered = "user.registered"
	EventFriendAdded    = "friend.added"
	EventFriendRemoved  = "friend.removed"
	EventPostCreated    = "post.created"
	EventPostUpdated    = "post.updated"
	EventPostDeleted    = "post.deleted"
)

// The relayed ones (post.*, and dialog.message_sent in dialog.go), their frames and recipients are
// listed in relayed.go.

// UserRegistered is the payload of user.registered. It carries no password, not even a hash.
type UserRegistered struct {
	UserID     string `json:"user_id"`
	FirstName  string `json:"first_name"`
	SecondName string `json:"second_name"`
	Birthdate  string `json:"birthdate"`
	Biography  string `json:"biography"`
	City       string `json:"city"`
}

// FriendChanged is the payload of friend.added and friend.removed (aggregate: the follower).
type FriendChanged struct {
	UserID   string `json:"user_id"`
	FriendID string `json:"friend_id"`
}

// PostChanged is the payload of the post events. Text is empty for post.deleted.
type PostChanged struct {
	PostID       string `json:"post_id"`
	AuthorUserID string `json:"author_user_id"`
	Text         string `json:"text"`
}

// Route: a post event goes to the author's followers.
func (p PostChanged) Route() Route { return Route{Author: p.AuthorUserID} }

// FeedFrame is what a follower's websocket receives for one post event (design.md §4). The first
// three fields are the OTUS AsyncAPI payload. The dispatcher encodes it once per event and the
// realtime workers forward the bytes unchanged.
type FeedFrame struct {
	PostID       string    `json:"postId"`
	PostText     string    `json:"postText"`
	AuthorUserID string    `json:"author_user_id"`
	Type         string    `json:"type"`
	Position     int64     `json:"position"`
	CreatedAt    time.Time `json:"created_at"`
}

// NewFeedFrame builds the frame for a post event relayed at position.
func NewFeedFrame(eventType string, p PostChanged, position int64, at time.Time) FeedFrame {
	text := p.Text
	if eventType == EventPostDeleted {
		text = ""
	}
	return FeedFrame{
		PostID:       p.PostID,
		PostText:     text,
		AuthorUserID: p.AuthorUserID,
		Type:         eventType,
		Position:     position,
		CreatedAt:    at.UTC(),
	}
}

// FrameResync is the type of the frame that ends a resume which cannot be exact: more frames were
// missed than one resume sends, or the client asked for a position above the newest (it saw a
// database since restored from a backup). The client reloads through REST, then reconnects with
// since=Position (design.md §4).
//
// With Kinds, it says instead that the socket dropped frames of those kinds at or below Position
// (a live socket's queue of them overflowed: someone else's messages must not cost the user their
// post frames) and goes on: the client reloads those kinds through REST. Every frame before it on
// the socket is at or below Position and every frame after it above, so a client that does not
// know Kinds and reloads everything, then reconnects with since=Position, loses nothing either.
const FrameResync = "resync"

// ResyncFrame is the resync frame for position.
type ResyncFrame struct {
	Type     string   `json:"type"`
	Position int64    `json:"position"`
	Kinds    []string `json:"kinds,omitempty"`
}

// NewResyncFrame returns the resync frame that sends a client on from position.
func NewResyncFrame(position int64) ResyncFrame {
	return ResyncFrame{Type: FrameResync, Position: position}
}

// NewKindsResyncFrame returns the frame that tells a client its socket dropped frames of kinds at
// or below position, and goes on.
func NewKindsResyncFrame(position int64, kinds ...string) ResyncFrame {
	return ResyncFrame{Type: FrameResync, Position: position, Kinds: kinds}
}
