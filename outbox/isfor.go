package outbox

// isForSQL is the domain's recipients rule (domain/relayed.go) as a SQL condition on one outbox
// row, for the readers that check it row by row (resume, the gap fill): a row without recipients
// goes to its author's followers (one probe of the friendships primary key), a row with recipients
// to them. user, author and recipients are SQL expressions. The probe is a scalar subquery, which
// no plan turns into a hash of all the user's follows (resume.go). The dispatcher's routing reads
// the same rule from the other side, recipients by author (route.go).
func isForSQL(user, author, recipients string) string {
	return `CASE WHEN ` + recipients + ` IS NULL
		THEN (SELECT true FROM friendships f WHERE f.user_id = ` + user + ` AND f.friend_id = ` + author + `)
		ELSE ` + user + ` = ANY (` + recipients + `) END`
}
