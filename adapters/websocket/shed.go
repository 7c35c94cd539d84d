package websocket

import (
	"encoding/json"

	"github.com/socialnet/social/domain"
)

// A socket's dialog frames have a byte bound of their own (Config.DialogQueueBytes), beside its
// post frames' (Config.SendQueueBytes). Four accounts sending one user 5,640 messages of 40 KB in
// 25 s filled the socket's one queue, and it was closed with 1013: 21 of 24 posts a friend made
// meanwhile never arrived live (issue #24). Other people decide how many messages a user gets;
// they must not decide whether the user's feed stays live.
//
// When a dialog frame does not fit, the socket sheds dialog frames: it drops them until the dialog
// frames queued before have been written, while post frames queue and go out as before. Nothing is
// lost silently (design.md §4): before any frame queued after a dropped one, and at the latest when
// the queue runs dry, the socket sends {"type":"resync","position":P,"kinds":["dialog"]}, P the
// last position dropped (domain.NewKindsResyncFrame). Every frame before it on the socket is at or
// below P and every later one above (frames arrive in position order), so the client reloads its
// dialogs through REST and goes on, on the same socket; one that reloads everything and reconnects
// with since=P, as after any resync, misses nothing either. If the socket closes before that frame
// is written, no frame above P was written either, and the client's next resume reads the dropped
// ones. Post frames past their bound still close the socket with 1013: an OTUS client knows no
// resync, and a user's own feed is what the bound protects.

// shedLocked reports whether dialog frame f is dropped, and records it if so. Called with c.mu held.
func (c *conn) shedLocked(f *frame) bool {
	if c.shedding && c.queue.dialogBytes == 0 {
		c.shedding = false // what was queued before the drop is written: dialog frames flow again
	}
	// An empty queue of them takes any dialog frame, as for posts.
	if !c.shedding && (c.queue.dialogBytes == 0 || c.queue.dialogBytes+len(f.body) <= c.h.cfg.DialogQueueBytes) {
		return false
	}
	c.shedding = true
	c.shedUpTo = max(c.shedUpTo, f.position)
	c.h.metrics.shed.Inc()
	return true
}

// shedFrameLocked returns the resync frame for the dialog frames dropped since the last one, or
// nil when none were. Called with c.mu held, when a frame is about to follow them on the socket or
// the queue has run dry.
func (c *conn) shedFrameLocked() *frame {
	if c.shedUpTo == 0 {
		return nil
	}
	body, _ := json.Marshal(domain.NewKindsResyncFrame(c.shedUpTo, domain.KindDialog)) // cannot fail: ints and strings
	f := &frame{position: c.shedUpTo, body: body, kind: domain.FrameResync}
	c.shedUpTo = 0
	c.h.metrics.shedResyncs.Inc()
	return f
}
