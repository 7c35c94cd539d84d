package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Relayed events: the event types the outbox relays to websockets, each with its frame and its
// recipient rule. This file is the one place that knows them: the relay (outbox/claim.go), resume
// (outbox/resume.go), replay and the writers of outbox rows (adapters/postgres) all ask it, and
// none of them names an event type. Adding a type is one entry in relayedTypes (docs/events.md).

// Audience says who receives a relayed event.
type Audience uint8

const (
	// AudienceFollowers: the followers of the event's author, as they are when it is relayed
	// (and, for resume, as they are when the client resumes). The outbox row names no recipient.
	AudienceFollowers Audience = iota + 1
	// AudienceRecipients: exactly the users its Route names, known when the event is written and
	// stored on its outbox row (outbox.recipients): a dialog message's two users.
	AudienceRecipients
)

// MaxRecipients bounds the explicit recipients of one event: they travel as one page of the
// relay (up to 1,000 users per message) and one array on the outbox row.
const MaxRecipients = 1000

// Route is who receives one relayed event.
type Route struct {
	// Author is the user whose events are relayed in their order (a refused row holds back that
	// author's later rows until it is relayed or dead). With AudienceFollowers the event goes to
	// the author's followers.
	Author string
	// Recipients are, with AudienceRecipients, every user who receives the event (1..MaxRecipients,
	// no duplicates); empty with AudienceFollowers.
	Recipients []string
}

// Routed is a relayed event's payload: it names its route.
type Routed interface {
	Route() Route
}

// Now is what the read model holds now about a relayed event's aggregate (the view aggregate_now,
// joined by the relay's claim and by resume): a frame carries only what is true now (design.md
// §4, §5). A post that was edited is sent with its current text; one that was deleted has no
// row, and only its tombstone is sent. Types whose aggregate never changes ignore it.
type Now struct {
	Found bool   // the aggregate has a row in aggregate_now
	Text  string // its current text
}

// ErrSuperseded: nothing of the event is true now (a post deleted since), so no frame is sent: the
// relay marks its row relayed without publishing, resume skips it. Not an error of the row.
var ErrSuperseded = errors.New("event superseded by later events")

// ErrUnknownEventType: the event type is not relayed (no frame, no recipient rule). The relay
// refuses such a row (retried with backoff, then dead) and resume skips it.
var ErrUnknownEventType = errors.New("event type is not relayed")

// relayedType is one entry of relayedTypes.
type relayedType struct {
	audience Audience
	// decode reads a stored payload: its route, and its frame relayed at position with what is
	// true now (ErrSuperseded: no frame).
	decode func(typ string, payload []byte, position int64, at time.Time, now Now) (Route, []byte, error)
	// route is the route of a payload about to be written; ok is false when it is not this
	// type's payload.
	route func(payload any) (r Route, ok bool)
}

// relayedTypes lists every relayed event type.
var relayedTypes = map[string]relayedType{
	EventPostCreated: relayedJSON(AudienceFollowers, NewFeedFrame, postNow),
	EventPostUpdated: relayedJSON(AudienceFollowers, NewFeedFrame, postNow),
	EventPostDeleted: relayedJSON(AudienceFollowers, NewFeedFrame, postNow),

	// A message never changes once sent: nothing of aggregate_now applies to it.
	EventDialogMessageSent: relayedJSON(AudienceRecipients, NewDialogFrame),
}

// postNow applies what is true now to a post event: a created or updated post that no longer
// exists is superseded (its delete's tombstone is what tells), one that exists carries its
// current text, whatever the text was when the event was written.
func postNow(typ string, p *PostChanged, now Now) error {
	if typ == EventPostDeleted {
		p.Text = ""
		return nil
	}
	if !now.Found {
		return ErrSuperseded
	}
	p.Text = now.Text
	return nil
}

// relayedJSON is the entry of a type whose payload P is stored as JSON and whose frame F is
// encoded as JSON by frame. now, if given, brings the payload up to what is true now (or says
// ErrSuperseded) before the frame is made; a type whose aggregate never changes gives none.
func relayedJSON[P Routed, F any](aud Audience, frame func(eventType string, p P, position int64, at time.Time) F, now ...func(typ string, p *P, now Now) error) relayedType {
	return relayedType{
		audience: aud,
		decode: func(typ string, payload []byte, position int64, at time.Time, cur Now) (Route, []byte, error) {
			var p P
			if err := json.Unmarshal(payload, &p); err != nil {
				return Route{}, nil, fmt.Errorf("decode %s payload: %w", typ, err)
			}
			for _, f := range now {
				if err := f(typ, &p, cur); err != nil {
					return p.Route(), nil, err
				}
			}
			b, err := json.Marshal(frame(typ, p, position, at))
			if err != nil {
				return Route{}, nil, fmt.Errorf("encode %s frame: %w", typ, err)
			}
			return p.Route(), b, nil
		},
		route: func(payload any) (Route, bool) {
			switch p := payload.(type) {
			case P:
				return p.Route(), true
			case *P:
				return (*p).Route(), true
			}
			return Route{}, false
		},
	}
}

// RelayedEventTypes are the relayed event types, sorted.
func RelayedEventTypes() []string {
	out := make([]string, 0, len(relayedTypes))
	for t := range relayedTypes {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Frame kinds are what a websocket asks for with ?types= (design.md §4): a socket forwards the
// frames of the kinds it asked for (KindPost only, by default, so that a client written against
// the OTUS AsyncAPI never receives a frame it cannot read). A relayed event type's kind is its
// name up to the first dot, and so is its frame type's: "post.created" and its frame are "post",
// "dialog.message_sent" and its frame "dialog.message" are "dialog".
const (
	KindPost   = "post"
	KindDialog = "dialog"
)

// FrameKind is the kind of an event type or a frame type.
func FrameKind(typ string) string {
	kind, _, _ := strings.Cut(typ, ".")
	return kind
}

// FrameKinds are the kinds of the relayed types, sorted.
func FrameKinds() []string {
	var out []string
	for _, t := range RelayedEventTypes() {
		if k := FrameKind(t); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// IsFrameKind reports whether some relayed type is of kind k.
func IsFrameKind(k string) bool { return slices.Contains(FrameKinds(), k) }

// RelayedEventTypesOf are the relayed event types of the given kinds, sorted.
func RelayedEventTypesOf(kinds []string) []string {
	var out []string
	for _, t := range RelayedEventTypes() {
		if slices.Contains(kinds, FrameKind(t)) {
			out = append(out, t)
		}
	}
	return out
}

// IsRelayedEventType reports whether t is relayed through the outbox.
func IsRelayedEventType(t string) bool {
	_, ok := relayedTypes[t]
	return ok
}

// AudienceOf is who receives events of type t; ok is false for a type that is not relayed.
func AudienceOf(t string) (a Audience, ok bool) {
	rt, ok := relayedTypes[t]
	return rt.audience, ok
}

// DecodeRelayed reads a stored event of a relayed type: its route and its websocket frame as
// relayed at position, carrying what is true now of its aggregate. It is the only frame encoder:
// the relay, replay and resume all call it, so a frame is the same bytes live and resumed. An
// unknown type is ErrUnknownEventType; an event of which nothing is true now is ErrSuperseded
// (with its route, and no frame).
func DecodeRelayed(eventType string, payload []byte, position int64, at time.Time, now Now) (Route, []byte, error) {
	rt, ok := relayedTypes[eventType]
	if !ok {
		return Route{}, nil, fmt.Errorf("%w: %q", ErrUnknownEventType, eventType)
	}
	return rt.decode(eventType, payload, position, at, now)
}

// EncodeFrame is the websocket frame of a stored event relayed at position (DecodeRelayed without
// the route).
func EncodeFrame(eventType string, payload []byte, position int64, at time.Time, now Now) ([]byte, error) {
	_, b, err := DecodeRelayed(eventType, payload, position, at, now)
	return b, err
}

// OutboxRoute is the route of an event about to be written with its outbox row: what the row
// stores (its author, and its recipients for AudienceRecipients). It refuses an unknown type, a
// payload that is not the type's, and a route that breaks the type's rule.
func OutboxRoute(eventType string, payload any) (Route, error) {
	rt, ok := relayedTypes[eventType]
	if !ok {
		return Route{}, fmt.Errorf("%w: %q", ErrUnknownEventType, eventType)
	}
	r, ok := rt.route(payload)
	if !ok {
		return Route{}, fmt.Errorf("event %s: payload %T is not its payload", eventType, payload)
	}
	if r.Author == "" {
		return Route{}, fmt.Errorf("event %s: route names no author", eventType)
	}
	switch rt.audience {
	case AudienceFollowers:
		if len(r.Recipients) > 0 {
			return Route{}, fmt.Errorf("event %s goes to the author's followers: its route must name no recipient", eventType)
		}
	case AudienceRecipients:
		if len(r.Recipients) == 0 || len(r.Recipients) > MaxRecipients {
			return Route{}, fmt.Errorf("event %s: %d recipients, want 1..%d", eventType, len(r.Recipients), MaxRecipients)
		}
		seen := make(map[string]bool, len(r.Recipients))
		for _, u := range r.Recipients {
			if u == "" || seen[u] {
				return Route{}, fmt.Errorf("event %s: recipient %q empty or named twice", eventType, u)
			}
			seen[u] = true
		}
	}
	return r, nil
}
