-- /user/search by last name alone: users_names_prefix (first_name, second_name) cannot bound a
-- scan by its second column. (The OTUS index exercise; the plans are checked by
-- adapters/postgres/users_search_test.go.) Built in the migration's transaction: it blocks writes
-- to users while it runs, about a second per 300,000 users.
CREATE INDEX users_second_name_prefix ON users (second_name text_pattern_ops);
