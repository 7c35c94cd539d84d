package outbox

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/socialnet/social/domain"
)

// maxMessageBytes bounds one feed message: a batch's deliveries for one instance go out in as
// many messages as it takes (in order, on the same channel), so a backlog flush or a celebrity's
// 100,000 online followers never make a message the broker or the realtime must hold whole.
const maxMessageBytes = 1 << 20

// maxIDsPerDelivery cuts one frame's recipients on one instance into deliveries of at most this
// many ids (about 370 KB), so that a delivery fits a message.
const maxIDsPerDelivery = 10_000

// instanceMessages are one instance's messages of a batch, and which rows each carries.
type instanceMessages struct {
	instance string
	msgs     []*message.Message
	rows     [][]int // row indexes of each message, in order
	// The message being filled, and its rows.
	body     []byte
	bodyRows []int
}

// add appends row i's frame for ids, sealing the message being filled first if it would pass
// maxMessageBytes.
func (im *instanceMessages) add(i int, frame []byte, ids []string) {
	size := domain.DeliverySize(frame, ids)
	if im.body != nil && len(im.body)+size > maxMessageBytes {
		im.seal()
	}
	if im.body == nil {
		im.body = domain.NewDeliveries(make([]byte, 0, 512))
	}
	im.body = domain.AppendDelivery(slices.Grow(im.body, size), frame, ids)
	if len(im.bodyRows) == 0 || im.bodyRows[len(im.bodyRows)-1] != i {
		im.bodyRows = append(im.bodyRows, i)
	}
}

// seal ends the message being filled, if any.
func (im *instanceMessages) seal() {
	if im.body == nil {
		return
	}
	im.msgs = append(im.msgs, message.NewMessage(uuid.NewString(), im.body))
	im.rows = append(im.rows, im.bodyRows)
	im.body, im.bodyRows = nil, nil
}

// build encodes a batch's deliveries into feed messages (domain.AppendDelivery), per instance,
// rows in position order. Rows that are refused or superseded send nothing, and neither do the
// later rows of an author whose row is refused: they are released (outcomes) and published after
// its retry, so no follower gets them ahead of it.
func build(rows []*row, rt routes) []*instanceMessages {
	var out []*instanceMessages
	byInstance := map[string]*instanceMessages{}
	refused := map[string]bool{}
	for i, rw := range rows {
		if rw.refuse != "" {
			refused[rw.author] = true
		}
		if rw.refuse != "" || rw.superseded || refused[rw.author] {
			continue
		}
		for _, t := range rt.of(i, rw) {
			im := byInstance[t.instance]
			if im == nil {
				im = &instanceMessages{instance: t.instance}
				byInstance[t.instance] = im
				out = append(out, im)
			}
			for ids := range slices.Chunk(t.users, maxIDsPerDelivery) {
				im.add(i, rw.frame, ids)
			}
		}
	}
	for _, im := range out {
		im.seal()
	}
	return out
}

// publish sends every instance's messages, one Publish call per instance (topic = the instance's
// id), the calls side by side, and returns each instance's outcome. The publisher waits for the
// broker's confirms: nil means every message of the instance was routed to its queue (or dropped
// as unroutable, when the instance is gone: its users resume from the outbox).
func (r *Relay) publish(ctx context.Context, ims []*instanceMessages) []error {
	errs := make([]error, len(ims))
	var wg sync.WaitGroup
	for i, im := range ims {
		for _, m := range im.msgs {
			m.SetContext(ctx)
		}
		wg.Go(func() { errs[i] = r.cfg.Publisher.Publish(im.instance, im.msgs...) })
	}
	wg.Wait()
	return errs
}

// outcomes decides each row's result from the instances' publish errors: a row is relayed when
// every message that carried it was confirmed. A refused message (Config.Refused) counts an
// attempt of its rows; any other failure releases them (no attempt: the broker or the network
// failed, not the row). Once a row of an author is not relayed, the author's later rows of the
// batch are released too, even if confirmed: they are published again after the earlier row's
// retry (a follower may see a later frame twice; never out of order for the last delivery).
func (r *Relay) outcomes(rows []*row, ims []*instanceMessages, errs []error) ([]result, error) {
	failed := make([]error, len(rows))
	var brokerErr error
	for k, im := range ims {
		if errs[k] == nil {
			continue
		}
		r.metrics.publishErrors.Add(float64(len(im.msgs)))
		if !r.cfg.Refused(errs[k]) && brokerErr == nil {
			brokerErr = errs[k]
		}
		for _, ids := range im.rows {
			for _, i := range ids {
				if failed[i] == nil {
					failed[i] = errs[k]
				}
			}
		}
	}
	for k, im := range ims {
		if errs[k] == nil {
			r.metrics.publishedMessages.Add(float64(len(im.msgs)))
		}
	}
	now := time.Now()
	results := make([]result, len(rows))
	blocked := map[string]bool{}
	for i, rw := range rows {
		res := &results[i]
		res.row = rw
		switch {
		case blocked[rw.author]:
			res.outcome = released
		case rw.refuse != "":
			res.outcome, res.err = refused, rw.refuse
		case failed[i] != nil && r.cfg.Refused(failed[i]):
			res.outcome, res.err = refused, failed[i].Error()
		case failed[i] != nil:
			res.outcome = released
		default:
			res.outcome, res.confirmedAt = relayed, now
		}
		if res.outcome == refused {
			res.retryIn = backoff(rw.attempts, r.cfg.RetryBackoffMin, r.cfg.RetryBackoffMax)
		}
		if res.outcome != relayed {
			blocked[rw.author] = true
		}
	}
	return results, brokerErr
}
