package domain

import (
	"context"
	"strings"
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

// ValidatePostText enforces 1..MaxPostLen characters of valid UTF-8, no NUL (PostgreSQL cannot
// store it in text: a 500, and a failed shared transaction for every post batched with it), and
// not only whitespace (a blank post would be delivered to every follower).
func ValidatePostText(text string) error {
	if !utf8.ValidString(text) {
		return Errorf(EINVALID, "text must be valid UTF-8")
	}
	if strings.TrimSpace(text) == "" {
		return Errorf(EINVALID, "text must not be empty or only whitespace")
	}
	if strings.IndexByte(text, 0) >= 0 {
		return Errorf(EINVALID, "text must not contain NUL characters")
	}
	if utf8.RuneCountInString(text) > MaxPostLen {
		return Errorf(EINVALID, "text must be at most %d characters long", MaxPostLen)
	}
	return nil
}

// Idempotency keys of post creation (design.md §2).
const (
	// IdempotencyWindow is how long a key is remembered.
	IdempotencyWindow = 24 * time.Hour
	// MaxIdempotencyKeyLen is the longest key, in characters of [A-Za-z0-9_-].
	MaxIdempotencyKeyLen = 64
)

// ValidateIdempotencyKey enforces 1..MaxIdempotencyKeyLen characters of [A-Za-z0-9_-].
func ValidateIdempotencyKey(key string) error {
	if key == "" || len(key) > MaxIdempotencyKeyLen {
		return Errorf(EINVALID, "Idempotency-Key must be 1 to %d characters long", MaxIdempotencyKeyLen)
	}
	for _, c := range key {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return Errorf(EINVALID, "Idempotency-Key may hold only A-Z, a-z, 0-9, _ and -")
		}
	}
	return nil
}

// FeedPage selects a page of a list, newest first: the feed, a user's posts, the users one follows.
type FeedPage struct {
	// Offset skips that many items. Its cost grows with it (every skipped item is read), so the
	// lists of posts bound it (FEED_MAX_OFFSET) and page deeper by Before.
	Offset int
	Limit  int
	// Before, when set, is a keyset cursor for lists of posts: the page holds posts with an id
	// below it (UUIDv7 ids sort by time, so older ones), and costs the same at any depth.
	Before string
	// MaxTextBytes, when positive, ends the page early: it holds the newest posts whose texts add
	// up to at most MaxTextBytes, and always at least one. It bounds what one page holds in memory
	// (1,000 posts of 10,000 four-byte characters would be 40 MB).
	MaxTextBytes int
}

// Paging limits of /post/feed, /post/list and /friend/list. MaxFeedOffset is the largest offset
// any list accepts; the lists of posts have their own bound below it (FEED_MAX_OFFSET).
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
	// CreateOnce is Create under an idempotency key (ValidateIdempotencyKey): when authorID
	// created a post with key within IdempotencyWindow, it creates nothing and returns that post
	// (created false), or ECONFLICT if that post's text was another. The key is stored in the
	// post's transaction, so a failed or unanswered call followed by a retry makes one post.
	CreateOnce(ctx context.Context, authorID, text, key string) (p Post, created bool, err error)
	// Update and Delete return EFORBIDDEN when actorID is not the author.
	Update(ctx context.Context, actorID, postID, text string) error
	Delete(ctx context.Context, actorID, postID string) error
	Post(ctx context.Context, id string) (Post, error)
	// Feed returns posts of the users userID follows, newest first. When next is not empty the
	// feed may go on: the next page is the one Before next (a page cut at page.MaxTextBytes, a
	// full page, or one whose read ended early for its cost may all be followed by more).
	Feed(ctx context.Context, userID string, page FeedPage) (posts []Post, next string, err error)
	// ByAuthor returns authorID's posts, newest first, paged as Feed; an unknown authorID is
	// ENOTFOUND.
	ByAuthor(ctx context.Context, authorID string, page FeedPage) (posts []Post, next string, err error)
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
