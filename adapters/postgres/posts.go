package postgres

import (
	"context"
	"errors"
	"math"
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
	now   func() time.Time
	group *createGroup
}

var _ domain.PostService = (*PostService)(nil)

// NewPostService returns a PostService on pool.
func NewPostService(pool *pgxpool.Pool) *PostService {
	// Half the pool for concurrent post transactions leaves the rest to reads; 64 posts per
	// shared transaction keep one batch well under a megabyte of statements.
	slots := max(1, int(pool.Config().MaxConns)/2)
	return &PostService{pool: pool, now: time.Now, group: newCreateGroup(pool, slots, 64)}
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

// Feed returns the newest posts of the users userID follows. Post ids are UUIDv7, so id order is
// creation order and the (author_user_id, id DESC) index serves each followed author.
func (s *PostService) Feed(ctx context.Context, userID string, page domain.FeedPage) ([]domain.Post, bool, error) {
	return s.page(ctx, "feed", `SELECT p.id, p.text, p.author_user_id, p.created_at
		FROM friendships f JOIN posts p ON p.author_user_id = f.friend_id
		WHERE f.user_id = $1`, userID, page)
}

// ByAuthor returns authorID's newest posts, read from the (author_user_id, id DESC) index; an
// unknown authorID is ENOTFOUND (asked only when the page is empty).
func (s *PostService) ByAuthor(ctx context.Context, authorID string, page domain.FeedPage) ([]domain.Post, bool, error) {
	posts, cut, err := s.page(ctx, "posts of a user", `SELECT p.id, p.text, p.author_user_id, p.created_at
		FROM posts p WHERE p.author_user_id = $1`, authorID, page)
	if err != nil || len(posts) > 0 {
		return posts, cut, err
	}
	var known bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, authorID).Scan(&known); err != nil {
		return nil, false, translate(err, "posts of a user")
	}
	if !known {
		return nil, false, domain.Errorf(domain.ENOTFOUND, "user %s not found", authorID)
	}
	return posts, false, nil
}

// page reads one page, newest first, of the posts that query selects (its one parameter $1 is
// arg; it names the posts table p). The page is cut in the database, by the running sum of the
// texts' sizes, so a cut page's texts are never sent to us; cut reports that.
func (s *PostService) page(ctx context.Context, what, query string, arg any, page domain.FeedPage) ([]domain.Post, bool, error) {
	if err := page.Validate(); err != nil {
		return nil, false, err
	}
	maxBytes := int64(math.MaxInt64)
	if page.MaxTextBytes > 0 {
		maxBytes = int64(page.MaxTextBytes)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, text, author_user_id, created_at, total FROM (
			SELECT page.*, sum(octet_length(text)) OVER w AS upto, row_number() OVER w AS n, count(*) OVER () AS total
			FROM (`+query+` ORDER BY p.id DESC OFFSET $2 LIMIT $3) page
			WINDOW w AS (ORDER BY id DESC)
		) sized WHERE n = 1 OR upto <= $4 ORDER BY id DESC`, arg, page.Offset, page.Limit, maxBytes)
	if err != nil {
		return nil, false, translate(err, what)
	}
	var total int
	posts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Post, error) {
		var p domain.Post
		var id, author uuid.UUID
		err := r.Scan(&id, &p.Text, &author, &p.CreatedAt, &total)
		p.ID, p.AuthorUserID = id.String(), author.String()
		return p, err
	})
	if err != nil {
		return nil, false, translate(err, what)
	}
	return posts, len(posts) < total, nil
}

func scanPost(row pgx.Row) (domain.Post, error) {
	var p domain.Post
	var id, author uuid.UUID
	err := row.Scan(&id, &p.Text, &author, &p.CreatedAt)
	p.ID, p.AuthorUserID = id.String(), author.String()
	return p, err
}
