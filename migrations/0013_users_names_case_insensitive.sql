-- /user/search matches name prefixes case-insensitively (design.md §2: "henry" finds Henry):
-- the name indexes hold lower(name), under the names the search's plan test looks for. Built in
-- the migration's transaction: it blocks writes to users while it runs, about a second per
-- 300,000 users.
DROP INDEX users_names_prefix;
DROP INDEX users_second_name_prefix;
CREATE INDEX users_names_prefix ON users (lower(first_name) text_pattern_ops, lower(second_name) text_pattern_ops);
CREATE INDEX users_second_name_prefix ON users (lower(second_name) text_pattern_ops);
