package http

import "time"

// Defaults of the per-user write throttles (design.md §2: posts and dialog sends are rate-limited
// per user). Each is a token bucket per user: that many at once, then one every minute/N.
const (
	// DefaultPostsPerUser is how many post writes (create, update, delete) a user makes per
	// minute: a person posting a thread, or editing a typo a few times over, stays well inside it;
	// each write is a frame to every online follower, so a script that posts or edits in a loop
	// does not flood them.
	DefaultPostsPerUser = 30
	// DefaultDialogSendsPerUser is how many dialog messages a user sends per minute: a lively chat
	// is a message every few seconds; four accounts sending 5,640 messages of 40 KB to one user in
	// 25 s (issue #24) are not a chat.
	DefaultDialogSendsPerUser = 60
)

// takeWrite counts one write of user in b and returns nil, or, when the user has none left, a 429
// with the wait in Retry-After. Called once the request is known to be valid, so bad input costs
// the caller nothing; buckets enter the table only for authenticated users who write.
func takeWrite(b *buckets, user, what string) error {
	if wait := b.take(user, time.Now()); wait > 0 {
		return throttled(wait, what)
	}
	return nil
}
