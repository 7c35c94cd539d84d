package websocket

import "github.com/socialnet/social/domain"

// frameQueue is one socket's frames not yet written, oldest first, with their body bytes (the
// dialog frames' counted apart: they have a bound of their own, shed.go). Its array is allocated
// on the first frame and dropped by reset: an idle socket holds no buffer. The socket's mutex
// guards it.
type frameQueue struct {
	frames []*frame // frames[head:] wait
	head   int
	// bytes is the body bytes waiting; dialogBytes the part of them in dialog frames.
	bytes, dialogBytes int
}

func (q *frameQueue) empty() bool { return q.head == len(q.frames) }

// postBytes is what waits in frames other than dialog ones (Config.SendQueueBytes bounds it).
func (q *frameQueue) postBytes() int { return q.bytes - q.dialogBytes }

func (q *frameQueue) push(f *frame) {
	if q.frames == nil {
		q.frames = make([]*frame, 0, 4)
	} else if len(q.frames) == cap(q.frames) && q.head > 0 {
		// A queue that never drains completely must not grow with every frame ever sent.
		n := copy(q.frames, q.frames[q.head:])
		clear(q.frames[n:])
		q.frames, q.head = q.frames[:n], 0
	}
	q.frames = append(q.frames, f)
	q.bytes += len(f.body)
	if f.kind == domain.KindDialog {
		q.dialogBytes += len(f.body)
	}
}

// take moves the next frames to dst: every one waiting, up to maxBytes of bodies (at least one).
// The array is kept when that empties the queue (reset drops it).
func (q *frameQueue) take(dst []*frame, maxBytes int) []*frame {
	start, size, dialog := len(dst), 0, 0
	for _, f := range q.frames[q.head:] {
		if len(dst) > start && size+len(f.body) > maxBytes {
			break
		}
		dst = append(dst, f)
		size += len(f.body)
		if f.kind == domain.KindDialog {
			dialog += len(f.body)
		}
	}
	n := len(dst) - start
	clear(q.frames[q.head : q.head+n])
	q.head += n
	q.bytes -= size
	q.dialogBytes -= dialog
	if q.empty() {
		q.frames, q.head = q.frames[:0], 0
	}
	return dst
}

// reset drops every frame and the array.
func (q *frameQueue) reset() { *q = frameQueue{} }
