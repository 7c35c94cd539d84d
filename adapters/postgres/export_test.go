package postgres

// Internals the external tests (package postgres_test, which may import pgtest) look at.
var (
	SearchQuery      = searchQuery
	PrefixRange      = prefixRange
	MaxSearchResults = maxSearchResults
	FeedQuery        = feedQuery
	FeedScanMax      = feedScanMaxPosts
	AuthorPostsQuery = authorPostsQuery
)

// Writes is how many presence statements p ran.
func (p *Presence) Writes() int64 { return p.writes.Load() }
