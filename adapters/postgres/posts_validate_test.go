package postgres_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
)

// TestPostTextIsRefusedBeforeTheDatabase: a text PostgreSQL would refuse (a NUL) never joins a
// group-commit transaction, where it failed every post batched with it (issue 12): it is refused
// before anything is sent, as the closed pool shows.
func TestPostTextIsRefusedBeforeTheDatabase(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	posts := postgres.NewPostService(db.Pool)
	db.Pool.Close()
	author := uuid.NewString()
	for _, text := range []string{"a\x00b", " \n\t", ""} {
		if _, err := posts.Create(context.Background(), author, text); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("Create(%q): %v, want EINVALID without a database", text, err)
		}
		if _, _, err := posts.CreateOnce(context.Background(), author, text, "k"); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("CreateOnce(%q): %v, want EINVALID without a database", text, err)
		}
		if err := posts.Update(context.Background(), author, uuid.NewString(), text); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("Update(%q): %v, want EINVALID without a database", text, err)
		}
	}
}
