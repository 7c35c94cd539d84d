package postgres

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/domain"
)

// DialogService implements domain.DialogService. Send appends the message's event, inserts the
// dialog_messages row and its outbox row in one implicit transaction (one batch): a 200 means all
// three are durable, and if any fails none is stored (no message its recipient would never hear
// of live, no frame for a message the list does not have).
type DialogService struct {
	pool  *pgxpool.Pool
	reads reader
	now   func() time.Time
}

var _ domain.DialogService = (*DialogService)(nil)

// NewDialogService returns a DialogService on pool.
func NewDialogService(pool *pgxpool.Pool, opts ...Option) *DialogService {
	return &DialogService{pool: pool, reads: newReader(pool, opts), now: time.Now}
}

// Send stores a message. Its aggregate is the message itself (version 1): messages never
// conflict with each other, whoever sends them.
func (s *DialogService) Send(ctx context.Context, from, to, text string) (domain.DialogMessage, error) {
	if err := domain.ValidateDialogMessage(from, to, text); err != nil {
		return domain.DialogMessage{}, err
	}
	m := domain.DialogMessage{ID: uuid.Must(uuid.NewV7()).String(), From: from, To: to, Text: text, CreatedAt: s.now().UTC()}
	e := makeEvent(m.ID, 1, domain.EventDialogMessageSent,
		domain.DialogMessageSent{MessageID: m.ID, From: from, To: to, Text: text}, m.CreatedAt)
	b := &pgx.Batch{}
	if err := queueAppend(b, e); err != nil {
		return domain.DialogMessage{}, err
	}
	b.Queue(`INSERT INTO dialog_messages (id, from_user_id, to_user_id, text, created_at) VALUES ($1, $2, $3, $4, $5)`,
		m.ID, from, to, text, m.CreatedAt)
	if err := queueOutbox(b, e); err != nil {
		return domain.DialogMessage{}, err
	}
	err := sendBatch(ctx, s.pool, b)
	switch {
	case isForeignKey(err, "dialog_messages_to_user_id_fkey"):
		return domain.DialogMessage{}, domain.Errorf(domain.ENOTFOUND, "user %s not found", to)
	case isForeignKey(err, "dialog_messages_from_user_id_fkey"):
		// A valid token for a user that does not exist here (e.g. the database was reset).
		return domain.DialogMessage{}, domain.Errorf(domain.EUNAUTHORIZED, "unknown user")
	case err != nil:
		return domain.DialogMessage{}, translate(err, "send dialog message")
	}
	return m, nil
}

// dialogPageSQL reads the newest $4 messages of the dialog of $1 and $2 older than $3 (NULL: the
// newest), newest first, one range of dialog_messages_dialog (the bound on id is written so that it
// is an index condition in a generic plan too: "$3 IS NULL OR id < $3" was a filter, reading every
// newer message of the dialog before the page), and one more row to tell whether older ones
// remain. Like the feed it is cut in the database by the running size of the texts
// ($5), always keeping the newest one, so a cut page's texts are never sent to us.
const dialogPageSQL = `
	SELECT id, from_user_id, to_user_id, text, created_at, fetched FROM (
		SELECT page.*, sum(octet_length(text)) OVER w AS upto, row_number() OVER w AS n, count(*) OVER () AS fetched
		FROM (SELECT id, from_user_id, to_user_id, text, created_at FROM dialog_messages
			WHERE least(from_user_id, to_user_id) = least($1::uuid, $2::uuid)
			  AND greatest(from_user_id, to_user_id) = greatest($1::uuid, $2::uuid)
			  AND id < coalesce($3::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
			ORDER BY least(from_user_id, to_user_id), greatest(from_user_id, to_user_id), id DESC
			LIMIT $4 + 1) page
		WINDOW w AS (ORDER BY id DESC)
	) sized WHERE n <= $4 AND (n = 1 OR upto <= $5) ORDER BY id DESC`

// List returns a page of the dialog of userID and peerID, oldest first. Only its two users can
// name it: whoever calls, the dialog read is the caller's own with peerID.
func (s *DialogService) List(ctx context.Context, userID, peerID string, page domain.DialogPage) ([]domain.DialogMessage, bool, error) {
	if err := domain.ValidateDialogPeer(userID, peerID); err != nil {
		return nil, false, err
	}
	if err := page.Validate(); err != nil {
		return nil, false, err
	}
	maxBytes := int64(math.MaxInt64)
	if page.MaxTextBytes > 0 {
		maxBytes = int64(page.MaxTextBytes)
	}
	var before any
	if page.Before != "" {
		before = page.Before
	}
	var msgs []domain.DialogMessage
	var fetched int
	err := s.reads.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, dialogPageSQL, userID, peerID, before, page.Limit, maxBytes)
		if err != nil {
			return err
		}
		msgs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.DialogMessage, error) {
			var m domain.DialogMessage
			var id, from, to uuid.UUID
			err := r.Scan(&id, &from, &to, &m.Text, &m.CreatedAt, &fetched)
			m.ID, m.From, m.To = id.String(), from.String(), to.String()
			return m, err
		})
		if err != nil || len(msgs) > 0 {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, peerID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return domain.Errorf(domain.ENOTFOUND, "user %s not found", peerID)
		}
		return nil
	})
	if err != nil {
		return nil, false, translate(err, "list dialog")
	}
	slices.Reverse(msgs)
	return msgs, fetched > len(msgs), nil
}
