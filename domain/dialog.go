package domain

import (
	"context"
	"time"
)

// EventDialogMessageSent is appended for every dialog message (aggregate: the message).
const EventDialogMessageSent = "dialog.message_sent"

// FrameTypeDialogMessage is the type of a dialog message's websocket frame.
const FrameTypeDialogMessage = "dialog.message"

// DialogMessage is one message of the dialog between two users.
type DialogMessage struct {
	ID        string
	From      string
	To        string
	Text      string
	CreatedAt time.Time
}

// ValidateDialogMessage applies the rules of a message before anything is stored: its text follows
// the rules of a post's (ValidatePostText), and nobody writes to themselves (the outbox row would
// name one recipient twice, which domain.OutboxRoute refuses: a 500 instead of a 400).
func ValidateDialogMessage(from, to, text string) error {
	if err := ValidateDialogPeer(from, to); err != nil {
		return err
	}
	return ValidatePostText(text)
}

// ValidateDialogPeer refuses a dialog with yourself.
func ValidateDialogPeer(userID, peerID string) error {
	if userID == peerID {
		return Errorf(EINVALID, "a dialog is between two users: you cannot message yourself")
	}
	return nil
}

// DialogMessageSent is the payload of dialog.message_sent.
type DialogMessageSent struct {
	MessageID string `json:"message_id"`
	From      string `json:"from"`
	To        string `json:"to"`
	Text      string `json:"text"`
}

// Route: both users (the sender's other tabs see what they sent); relayed in order per sender.
func (m DialogMessageSent) Route() Route {
	return Route{Author: m.From, Recipients: []string{m.From, m.To}}
}

// DialogFrame is what the websockets of both users receive for a message (design.md §4), when
// they asked for dialog frames (?types=post,dialog).
type DialogFrame struct {
	Type      string    `json:"type"`
	ID        string    `json:"id"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Text      string    `json:"text"`
	Position  int64     `json:"position"`
	CreatedAt time.Time `json:"created_at"`
}

// NewDialogFrame builds the frame of a message relayed at position.
func NewDialogFrame(_ string, m DialogMessageSent, position int64, at time.Time) DialogFrame {
	return DialogFrame{Type: FrameTypeDialogMessage, ID: m.MessageID, From: m.From, To: m.To, Text: m.Text,
		Position: position, CreatedAt: at.UTC()}
}

// DialogPage selects a page of a dialog: the newest Limit messages older than Before (the
// newest of all when Before is empty), returned oldest first.
type DialogPage struct {
	// Before is a message id (exclusive); empty for the newest messages.
	Before string
	Limit  int
	// MaxTextBytes, when positive, ends the page early like FeedPage's: it keeps the newest
	// messages whose texts add up to at most MaxTextBytes, and always at least one.
	MaxTextBytes int
}

// Paging limits of /dialog/{user_id}/list. The default is larger than the feed's: an OTUS client
// that knows no paging reads the dialog in one call.
const (
	DefaultDialogLimit = 100
	MaxDialogLimit     = 1000
)

// Validate checks the limit (Before is checked by whoever parses it).
func (p DialogPage) Validate() error {
	if p.Limit < 1 || p.Limit > MaxDialogLimit {
		return Errorf(EINVALID, "limit must be between 1 and %d", MaxDialogLimit)
	}
	return nil
}

// DialogService sends and reads the messages between two users. Send appends the event, the
// message and its outbox row in one transaction. Implemented by adapters/postgres.
type DialogService interface {
	// Send stores a message from to. to == from and a bad text are EINVALID, an unknown to is
	// ENOTFOUND, an unknown from EUNAUTHORIZED (a valid token for a user this database lacks).
	Send(ctx context.Context, from, to, text string) (DialogMessage, error)
	// List returns a page of the dialog between userID and peerID, oldest first; more reports
	// that older messages remain (before the page's first). An unknown peer is ENOTFOUND.
	List(ctx context.Context, userID, peerID string, page DialogPage) (msgs []DialogMessage, more bool, err error)
}
