package websocket

import (
	"context"
	"fmt"
	"sync"

	"github.com/coder/websocket"
)

// Line batches (?batch=lines), for clients that ask for them.
//
// By default every frame is its own websocket message: one JSON object per message, as the OTUS
// AsyncAPI channel and design.md §4 describe. The server already writes a round's messages with
// one write(2) (wire.go), but the client still reads, unmasks and dispatches each message apart:
// in a burst that per-message cost is most of a reading client's CPU (Centrifugo's protocol packs
// several replies into one message for the same reason). A client that asks with ?batch=lines gets the frames of a round in one message, one
// JSON object per line ('\n' between them, none after the last; JSON text never holds a raw
// newline, so splitting on '\n' is exact), at most maxBatchBytes of frames per message (a round's
// bound, so a round is one message) unless a single frame is larger. Order, positions, resume and the resync frame are unchanged: a message with one line
// is exactly the frame an OTUS client gets.

// batchLines is the only value ?batch= takes.
const batchLines = "lines"

// parseBatch reads ?batch=: absent means one frame per message; "lines" asks for line batches;
// anything else is an error for a 400.
func parseBatch(values []string) (bool, error) {
	switch {
	case len(values) == 0:
		return false, nil
	case len(values) == 1 && values[0] == batchLines:
		return true, nil
	default:
		return false, fmt.Errorf("batch: %q is not a batch format; the only one is %q (several frames per message, one per line)", values, batchLines)
	}
}

// lineMessage assembles one batched message. n counts its frames: the cap is on frame bytes, as
// a round's (takeLocked), so a round's frames make one message and the separators come on top.
type lineMessage struct {
	b []byte
	n int
}

var linePool = sync.Pool{New: func() any { return &lineMessage{b: make([]byte, 0, 16<<10)} }}

func getLineMessage() *lineMessage { return linePool.Get().(*lineMessage) }

// put returns the buffer unless one huge frame grew it far beyond a round.
func (m *lineMessage) put() {
	if cap(m.b) > 4*maxBatchBytes {
		return
	}
	m.b, m.n = m.b[:0], 0
	linePool.Put(m)
}

// add appends body as a line, first writing out what is held if body would take the message's
// frames past maxBatchBytes.
func (m *lineMessage) add(ws *websocket.Conn, body []byte) error {
	if m.n > 0 && len(m.b)-(m.n-1)+len(body) > maxBatchBytes {
		if err := m.flush(ws); err != nil {
			return err
		}
	}
	if m.n > 0 {
		m.b = append(m.b, '\n')
	}
	m.b = append(m.b, body...)
	m.n++
	return nil
}

// flush writes what is held as one message. The buffer is reused at once: ws.Write returns once
// the frame is on the wire, which copies what it is given (wire.appendLocked).
func (m *lineMessage) flush(ws *websocket.Conn) error {
	if m.n == 0 {
		return nil
	}
	err := ws.Write(context.Background(), websocket.MessageText, m.b)
	m.b, m.n = m.b[:0], 0
	return err
}
