package postgres

// Internals the external tests (package postgres_test, which may import pgtest) look at.
var (
	SearchQuery      = searchQuery
	PrefixRange      = prefixRange
	MaxSearchResults = maxSearchResults
)
