package domain

import (
	"context"
	"time"

	"unicode/utf8"
)

// MaxPostLen is the longest post text in characters (Unicode code points).
const MaxPostLen = 10000

// Post is a short text published by a user.
type Post struct {
	ID           string
	Text         string
	AuthorUserID string
	CreatedAt    time.Time
}

// ValidatePostText enforces 1..MaxPostLen characters of valid UTF-8.
func ValidatePostText(text string) error {
	if !utf8.ValidString(text) {
		return Errorf(EINVALID, "text must be valid UTF-8")
	}
	if text == "" {
		return Errorf(EINVALID, "text must not be empty")
	}
	if utf8.RuneCountInString(text) > MaxPostLen {
		return Errorf(EINVALID, "text must be at most %d characters long", MaxPostLen)
	}
	return nil
}

// FeedPage selects a page of a list, newest first: the feed, the users one follows.
type FeedPage struct {
	Offset int
	Limit  int
}

// Paging limits of /post/feed.
const (
	MaxFeedLimit  = 1000
	MaxFeedOffset = 1_000_000
)

// Validate checks offset and limit.
func (p FeedPage) Validate() error {
	if p.Limit < 1 || p.Limit > MaxFeedLimit {
		return Errorf(EINVALID, "limit must be between 1 and %d", MaxFeedLimit)
	}
	if p.Offset < 0 || p.Offset > MaxFeedOffset {
		return Errorf(EINVALID, "offset must be between 0 and %d", MaxFeedOffset)
	}
	return nil
}

// PostService publishes and reads posts. Every write appends an event and an outbox row in the
// same transaction as the read model change. Implemented by adapters/postgres.
type PostService interface {
	Create(ctx context.Context, authorID, text string) (Post, error)
	// Update and Delete return EFORBIDDEN when actorID is not the author.
	Update(ctx context.Context, actorID, postID, text string) error
	Delete(ctx context.Context, actorID, postID string) error
	Post(ctx context.Context, id string) (Post, error)
	// Feed returns posts of the users userID follows, newest first.
	Feed(ctx context.Context, userID string, page FeedPage) ([]Post, error)
}

// FriendService manages the directed "friend" (follow) relation: Set(a, b) makes b's posts reach a.
type FriendService interface {
	// Set is idempotent; a == b is EINVALID and an unknown b is ENOTFOUND.
	Set(ctx context.Context, userID, friendID string) error
	// Delete is idempotent; an unknown friendID is ENOTFOUND.
	Delete(ctx context.Context, userID, friendID string) error
	// Following returns a page of the users userID follows, the most recently followed first.
	// An unknown userID is EUNAUTHORIZED (a valid token for a user this database lacks).
	Following(ctx context.Context, userID string, page FeedPage) ([]User, error)
}

// ValidateFriend refuses following yourself.
func ValidateFriend(userID, friendID string) error {
	if userID == friendID {
		return Errorf(EINVALID, "you cannot set yourself as a friend")
	}
	return nil
}
