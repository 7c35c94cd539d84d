package http

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/socialnet/social/domain"
)

// dialogMessageResponse is a message on the wire: the OTUS DialogMessage (from, to, text) and,
// added, its id and created_at (RFC3339, UTC), as in the dialog.message frame.
type dialogMessageResponse struct {
	From      string    `json:"from"`
	To        string    `json:"to"`
	Text      string    `json:"text"`
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
}

type sendDialogRequest struct {
	Text *string `json:"text"`
}

// sendDialog is POST /dialog/{user_id}/send: a message from the caller to user_id. The answer is
// empty (OTUS); the message reaches both users' sockets that asked for dialog frames.
func (s *Server) sendDialog(c echo.Context) error {
	to, err := parseID("user_id", c.Param("user_id"))
	if err != nil {
		return err
	}
	var req sendDialogRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Text == nil {
		return domain.Errorf(domain.EINVALID, "text is required")
	}
	from := currentUser(c)
	if err := domain.ValidateDialogMessage(from, to, *req.Text); err != nil {
		return err
	}
	if err := takeWrite(s.messages, from, "dialog messages from this user"); err != nil {
		return err
	}
	if _, err := s.cfg.Dialogs.Send(c.Request().Context(), from, to, *req.Text); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

// listDialog is GET /dialog/{user_id}/list[?limit=L][&before=ID]: the newest L messages (default
// 100) of the dialog between the caller and user_id older than message ID, oldest first. Like the
// feed, a response is at most FeedMaxBytes; when older messages remain (the page was full, or cut
// for its size), `Link: </dialog/U/list?limit=L&before=FIRST>; rel="next"` names the next page.
func (s *Server) listDialog(c echo.Context) error {
	peer, err := parseID("user_id", c.Param("user_id"))
	if err != nil {
		return err
	}
	page := domain.DialogPage{Limit: domain.DefaultDialogLimit, MaxTextBytes: s.cfg.FeedMaxBytes}
	if v := c.QueryParam("limit"); v != "" {
		if page.Limit, err = strconv.Atoi(v); err != nil {
			return domain.Errorf(domain.EINVALID, "limit must be an integer")
		}
	}
	if v := c.QueryParam("before"); v != "" {
		if page.Before, err = parseID("before", v); err != nil {
			return err
		}
	}
	msgs, more, err := s.cfg.Dialogs.List(c.Request().Context(), currentUser(c), peer, page)
	if err != nil {
		return err
	}
	return writeDialog(c, peer, page, msgs, more, s.cfg.FeedMaxBytes)
}

// writeDialog sends msgs (oldest first) as a JSON array of at most maxBytes, keeping the newest
// messages (always at least one), the way writeFeed sends a feed page: sized first, then streamed
// one message at a time, each dropped once written.
func writeDialog(c echo.Context, peer string, page domain.DialogPage, msgs []domain.DialogMessage, more bool, maxBytes int) error {
	var enc messageEncoder
	size, first := len("[]\n"), len(msgs)
	for i := len(msgs) - 1; i >= 0; i-- {
		n := len(enc.encode(msgs[i]))
		if i < len(msgs)-1 {
			n++ // the comma
		}
		if i < len(msgs)-1 && size+n > maxBytes {
			more = true
			break
		}
		size, first = size+n, i
	}
	msgs = msgs[first:]
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	h.Set(echo.HeaderContentLength, strconv.Itoa(size))
	if more && len(msgs) > 0 {
		h.Set("Link", fmt.Sprintf(`</dialog/%s/list?limit=%d&before=%s>; rel="next"`,
			url.PathEscape(peer), page.Limit, url.QueryEscape(msgs[0].ID)))
	}
	c.Response().WriteHeader(http.StatusOK)
	w := c.Response()
	if _, err := w.Write([]byte("[")); err != nil {
		return err
	}
	for i := range msgs {
		if i > 0 {
			if _, err := w.Write([]byte(",")); err != nil {
				return err
			}
		}
		b := enc.encode(msgs[i])
		msgs[i] = domain.DialogMessage{} // encoded: its text need not stay while the rest goes out
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	_, err := w.Write([]byte("]\n"))
	return err
}

// messageEncoder encodes one message at a time into a reused buffer, without HTML escaping.
type messageEncoder struct{ buf bytes.Buffer }

func (e *messageEncoder) encode(m domain.DialogMessage) []byte {
	e.buf.Reset()
	_ = newJSONEncoder(&e.buf).Encode(dialogMessageResponse{From: m.From, To: m.To, Text: m.Text, ID: m.ID, CreatedAt: m.CreatedAt.UTC()})
	return bytes.TrimSuffix(e.buf.Bytes(), []byte("\n"))
}
