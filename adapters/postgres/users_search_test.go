package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
)

// TestHostileUserSearchUsesTheNameIndexes: /user/search is unauthenticated, and read the whole
// users table for a rare prefix once PostgreSQL's cached generic plan took over from the plans
// made for each value (issue 12: 37–65 ms at 300,000 users; 600 ms measured here). The plan of
// every shape of the query, generic and custom, must be a scan of a name index, on enough users
// that a full scan would be the planner's choice for `LIKE $1`.
func TestHostileUserSearchUsesTheNameIndexes(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db.Exec(t, `INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
		SELECT gen_random_uuid(), (ARRAY['Ivan','Anna','Petr','Olga'])[1 + i % 4] || (i % 997),
			(ARRAY['Ivanov','Petrova','Sidorov'])[1 + i % 3] || (i % 1009), '1990-01-01', '', '', 'x', 1
		FROM generate_series(1, 50000) i`)
	db.Exec(t, `ANALYZE users`)
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, q := range []domain.UserSearch{
		{FirstName: "Anna99", LastName: "Petrova100"},
		{FirstName: "Anna99"},
		{LastName: "Petrova100"},
	} {
		sql, args := postgres.SearchQuery(q, postgres.MaxSearchResults)
		if _, err := conn.Exec(ctx, `DEALLOCATE ALL`); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `PREPARE search AS `+sql); err != nil {
			t.Fatal(err)
		}
		params := make([]string, len(args))
		for i, a := range args {
			params[i] = "'" + strings.ReplaceAll(a.(string), "'", "''") + "'"
		}
		for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
			if _, err := conn.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
				t.Fatal(err)
			}
			var plan string
			if err := conn.QueryRow(ctx, `EXPLAIN (FORMAT JSON) EXECUTE search(`+strings.Join(params, ", ")+`)`).Scan(&plan); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(plan, `"Seq Scan"`) || strings.Contains(plan, `"users_pkey"`) ||
				!strings.Contains(plan, `"users_names_prefix"`) && !strings.Contains(plan, `"users_second_name_prefix"`) {
				t.Errorf("%+v, %s: the plan reads the table instead of a name index:\n%s", q, mode, plan)
			}
		}
	}
	// And the ranges find exactly the prefixes, wildcards and all.
	db.Exec(t, `INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version) VALUES
		(gen_random_uuid(), '50%off', 'Émile', '1990-01-01', '', '', 'x', 1),
		(gen_random_uuid(), '50xoff', 'Émilf', '1990-01-01', '', '', 'x', 1),
		(gen_random_uuid(), 'Zoë', 'Ivanov0', '1990-01-01', '', '', 'x', 1)`)
	users := postgres.NewUserService(db.Pool)
	for q, want := range map[domain.UserSearch]int{
		{FirstName: "50%"}: 1, {LastName: "Émil"}: 2, {LastName: "É"}: 2, {FirstName: "Zo"}: 1,
		{FirstName: "Zoë", LastName: "Ivanov0"}: 1, {FirstName: "Anna99", LastName: "Petrova100"}: 0,
		// Case-insensitive, as users expect ("henry" finds Henry); the prefix semantics stay.
		{FirstName: "zo"}: 1, {FirstName: "ZOË"}: 1, {LastName: "émil"}: 2, {LastName: "IVANOV0"}: 1 + 50000/3/1009,
	} {
		got, err := users.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Errorf("search %+v: %d users, want %d", q, len(got), want)
		}
	}
}

func TestPrefixRange(t *testing.T) {
	for prefix, want := range map[string]string{"Ann": "Ano", "É": "Ê", "a\uD7FF": "a\uE000", "a\U0010FFFF": "b", "\U0010FFFF": ""} {
		got, ok := postgres.PrefixRange(prefix)
		if got != want || ok != (want != "") {
			t.Errorf("prefixRange(%q) = %q, %v; want %q", prefix, got, ok, want)
		}
	}
}
