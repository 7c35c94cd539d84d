package domain

import (
	"encoding/binary"
	"errors"
	"iter"
)

// A feed message is what the dispatcher sends one realtime instance (design.md §3): one or more
// relayed frames, each with the ids of that instance's users it is for, in position order. The
// realtime hands each frame, unchanged, to its local sockets of those users.
//
//	message  = version delivery...
//	version  = 0x01
//	delivery = uvarint(len(frame)) frame uvarint(len(ids)) id...
//	id       = byte(len(id)) id
//
// Binary rather than JSON: a delivery to 10,000 users is 370 KB of ids that the realtime slices
// out with no parsing, and a frame is carried as it was encoded, never re-encoded.
const deliveryVersion = 1

// MaxDeliveryIDLength is the longest user id a delivery carries (a UUID's text is 36 bytes).
const MaxDeliveryIDLength = 255

// ErrBadDelivery is returned for a feed message that is not in the format above.
var ErrBadDelivery = errors.New("malformed feed message")

// NewDeliveries starts a feed message in dst (usually dst[:0]).
func NewDeliveries(dst []byte) []byte { return append(dst, deliveryVersion) }

// AppendDelivery appends one frame and its recipients to a feed message started by
// NewDeliveries. Ids longer than MaxDeliveryIDLength are the caller's bug and are cut.
func AppendDelivery(dst, frame []byte, to []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(frame)))
	dst = append(dst, frame...)
	dst = binary.AppendUvarint(dst, uint64(len(to)))
	for _, id := range to {
		id = id[:min(len(id), MaxDeliveryIDLength)]
		dst = append(dst, byte(len(id)))
		dst = append(dst, id...)
	}
	return dst
}

// DeliverySize is how many bytes AppendDelivery adds for frame and to.
func DeliverySize(frame []byte, to []string) int {
	n := uvarintLen(len(frame)) + len(frame) + uvarintLen(len(to))
	for _, id := range to {
		n += 1 + min(len(id), MaxDeliveryIDLength)
	}
	return n
}

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// Recipients are the user ids of one delivery, read in place from the feed message, whose
// lengths EachDelivery checked: ranging over them allocates nothing, and neither does a map
// lookup written m[string(id)]. A realtime instance decodes every message it consumes, a
// celebrity's with 10,000 ids or more, so a string per id would be garbage per recipient.
type Recipients struct {
	ids   []byte // count × (byte(len(id)) id)
	count int
}

// Len is the number of ids.
func (r Recipients) Len() int { return r.count }

// All yields each id, in order. An id aliases the message: copy what you keep.
func (r Recipients) All() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for rest := r.ids; len(rest) > 0; {
			l := int(rest[0])
			if !yield(rest[1 : 1+l]) {
				return
			}
			rest = rest[1+l:]
		}
	}
}

// Strings returns the ids as strings (tools and tests; the hub ranges over All).
func (r Recipients) Strings() []string {
	out := make([]string, 0, r.count)
	for id := range r.All() {
		out = append(out, string(id))
	}
	return out
}

// EachDelivery calls fn for every delivery of a feed message, in order. frame and to alias body.
// A malformed message stops with ErrBadDelivery after the deliveries before the damage.
func EachDelivery(body []byte, fn func(frame []byte, to Recipients)) error {
	if len(body) == 0 || body[0] != deliveryVersion {
		return ErrBadDelivery
	}
	rest := body[1:]
	for len(rest) > 0 {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return ErrBadDelivery
		}
		frame := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		count, k := binary.Uvarint(rest)
		if k <= 0 || count > uint64(len(rest)) { // every id takes at least one byte
			return ErrBadDelivery
		}
		rest = rest[k:]
		ids := rest
		for range count {
			if len(rest) == 0 || int(rest[0]) > len(rest)-1 {
				return ErrBadDelivery
			}
			rest = rest[1+int(rest[0]):]
		}
		fn(frame, Recipients{ids: ids[:len(ids)-len(rest)], count: int(count)})
	}
	return nil
}
