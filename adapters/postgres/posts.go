package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/domain"
)

// PostService implements domain.PostService. Each write appends the post event, changes the posts
// read model and inserts the outbox row atomically: if any of the three fails, none is stored and
// the caller gets an error (no post that followers would never hear of, no frame for a lost post).
type PostService struct {
	pool  *pgxpool.Pool
	reads reader
	now   func() time.Time
	group *createGroup
}

var _ domain.PostService = (*PostService)(nil)

// NewPostService returns a PostService on pool.
func NewPostService(pool *pgxpool.Pool, opts ...Option) *PostService {
	// Half the pool for concurrent post transactions leaves the rest to reads; 64 posts per
	// shared transaction keep one batch well under a megabyte of statements.
	slots := max(1, int(pool.Config().MaxConns)/2)
	return &PostService{pool: pool, reads: newReader(pool, opts), now: time.Now, group: newCreateGroup(pool, slots, 64)}
}

// Create publishes a post. The three inserts travel in one batch, i.e. one round trip and one
// implicit transaction; the commit is synchronous, so a returned id means event and outbox row
// are durable. Under load, concurrent calls share the transaction (group commit, posts_group.go).
func (s *PostService) Create(ctx context.Context, authorID, text string) (domain.Post, error) {
	p, _, err := s.create(ctx, authorID, text, "")
	return p, err
}

// CreateOnce is Create under an idempotency key (idempotency.go). Keyed posts share the group's
// transactions like the others: a key already taken makes its statement insert nothing, never
// fail, so a client repeating a key cannot make a shared transaction fall back to one per post.
func (s *PostService) CreateOnce(ctx context.Context, authorID, text, key string) (domain.Post, bool, error) {
	if err := domain.ValidateIdempotencyKey(key); err != nil {
		return domain.Post{}, false, err
	}
	return s.create(ctx, authorID, text, key)
}

// create validates before anything reaches the group: a post the database would refuse (a NUL,
// say) would fail every post of the shared transaction it joined.
func (s *PostService) create(ctx context.Context, authorID, text, key string) (domain.Post, bool, error) {
	if err := domain.ValidatePostText(text); err != nil {
		return domain.Post{}, false, err
	}
	p := domain.Post{ID: uuid.Must(uuid.NewV7()).String(), Text: text, AuthorUserID: authorID, CreatedAt: s.now().UTC()}
	e := makeEvent(p.ID, 1, domain.EventPostCreated, domain.PostChanged{PostID: p.ID, AuthorUserID: authorID, Text: text}, p.CreatedAt)
	created := true
	queue := func(b *pgx.Batch) error {
		if key != "" {
			return queueCreateOnce(b, e, p, key, &created)
		}
		if err := queueAppend(b, e); err != nil {
			return err
		}
		b.Queue(`INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version) VALUES ($1, $2, $3, $4, $4, 1)`,
			p.ID, authorID, text, p.CreatedAt)
		return queueOutbox(b, e)
	}
	if err := s.group.do(ctx, queue); err != nil {
		if isForeignKey(err, "posts_author_user_id_fkey") {
			return domain.Post{}, false, domain.Errorf(domain.EUNAUTHORIZED, "unknown user")
		}
		return domain.Post{}, false, translate(err, "create post")
	}
	if !created {
		first, err := s.firstWithKey(ctx, authorID, key, text)
		return first, false, err
	}
	return p, true, nil
}

// Update replaces the text of the actor's own post.
func (s *PostService) Update(ctx context.Context, actorID, postID, text string) error {
	if err := domain.ValidatePostText(text); err != nil {
		return err
	}
	return s.change(ctx, actorID, postID, domain.EventPostUpdated, text)
}

// Delete removes the actor's own post from the read model; the event history keeps it.
func (s *PostService) Delete(ctx context.Context, actorID, postID string) error {
	return s.change(ctx, actorID, postID, domain.EventPostDeleted, "")
}

func (s *PostService) change(ctx context.Context, actorID, postID, typ, text string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var author uuid.UUID
		var version int
		err := tx.QueryRow(ctx, `SELECT author_user_id, version FROM posts WHERE id = $1 FOR UPDATE`, postID).Scan(&author, &version)
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.Errorf(domain.ENOTFOUND, "post %s not found", postID)
		} else if err != nil {
			return err
		}
		if author.String() != actorID {
			return domain.Errorf(domain.EFORBIDDEN, "only the author may change this post")
		}
		at := s.now().UTC()
		e := makeEvent(postID, version+1, typ, domain.PostChanged{PostID: postID, AuthorUserID: actorID, Text: text}, at)
		b := &pgx.Batch{}
		if err := queueAppend(b, e); err != nil {
			return err
		}
		if typ == domain.EventPostDeleted {
			b.Queue(`DELETE FROM posts WHERE id = $1`, postID)
		} else {
			b.Queue(`UPDATE posts SET text = $2, updated_at = $3, version = $4 WHERE id = $1`, postID, text, at, version+1)
		}
		if err := queueOutbox(b, e); err != nil {
			return err
		}
		return sendBatch(ctx, tx, b)
	})
	return translate(err, typ)
}

// Post returns a post by id, or ENOTFOUND (also for deleted posts).
func (s *PostService) Post(ctx context.Context, id string) (domain.Post, error) {
	p, err := scanPost(s.pool.QueryRow(ctx, `SELECT id, text, author_user_id, created_at FROM posts WHERE id = $1`, id))
	if err != nil {
		return domain.Post{}, translate(err, "get post")
	}
	return p, nil
}

// authorPostsSQL chooses the ids of a page of one author's posts (arguments as postPageSQL's,
// with the author for the reader): the (author_user_id, id DESC) index read from the cursor down,
// the offset and a page and one more, whatever plan PostgreSQL caches
// (TestPostListPlanDoesNotGrowWithDepth).
const authorPostsSQL = `SELECT id FROM posts WHERE author_user_id = $1 AND id < $2
	ORDER BY id DESC OFFSET $3::int LIMIT $4::int + 1`

// authorPostsQuery is the SQL of a page of one author's posts.
var authorPostsQuery = fmt.Sprintf(postPageSQL, authorPostsSQL)

// ByAuthor returns authorID's newest posts below page.Before, paged as Feed, in one snapshot
// under the read timeout; an unknown authorID is ENOTFOUND (asked only when the page is empty).
func (s *PostService) ByAuthor(ctx context.Context, authorID string, page domain.FeedPage) ([]domain.Post, string, error) {
	before, maxBytes, err := pageBounds(page)
	if err != nil {
		return nil, "", err
	}
	var posts []domain.Post
	var next string
	err = s.reads.read(ctx, func(tx pgx.Tx) error {
		var err error
		posts, next, err = readPostPage(ctx, tx, authorPostsQuery, authorID, before, page.Offset, page.Limit, maxBytes)
		if err != nil || len(posts) > 0 {
			return err
		}
		var known bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, authorID).Scan(&known); err != nil {
			return err
		}
		if !known {
			return domain.Errorf(domain.ENOTFOUND, "user %s not found", authorID)
		}
		return nil
	})
	if err != nil {
		return nil, "", translate(err, "posts of a user")
	}
	return posts, next, nil
}

func scanPost(row pgx.Row) (domain.Post, error) {
	var p domain.Post
	var id, author uuid.UUID
	err := row.Scan(&id, &p.Text, &author, &p.CreatedAt)
	p.ID, p.AuthorUserID = id.String(), author.String()
	return p, err
}
