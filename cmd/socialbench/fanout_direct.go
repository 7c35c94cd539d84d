package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/domain"
)

// directBurst hands n frames for the author's subscribers to the realtime side at once, without
// the api or any database write in the way: the realtime server's own saturation, which a burst
// through POST /post/create does not reach on this machine (the post transactions queue on
// PostgreSQL's NOTIFY lock first, for both systems alike).
//
//   - ours: n frames published straight to the feed exchange as the dispatcher shapes them (one
//     feed message per instance per frame, naming the subscribers with a socket there, routing
//     key = the instance id), while the realtime processes are stopped (SIGSTOP): RabbitMQ holds
//     them in their queues, confirmed, and the clock starts when the processes continue
//     (SIGCONT) — a backlog flush, as after an outage, and the realtime's own pace;
//   - Centrifugo: n rows of its outbox (publish to the author's channel, or broadcast to the
//     subscribers' personal channels) written in one transaction, read by its consumer 100 at a time.
//
// Latency counts from the moment the first frame was handed over.
func directBurst(ctx context.Context, l *load, sys *system, w *world, n int, centrifugoMode string) (*phase, error) {
	subs := w.connFollowers[0]
	ids := make([]string, len(subs))
	for i, u := range subs {
		ids[i] = w.ids[u]
	}
	if centrifugoMode == "" && len(sys.instances) == 0 {
		return nil, errors.New("the realtime instances' ids are unknown (a --target system)")
	}
	frames := make([][]byte, n)
	posts := make([]uuid.UUID, n)
	now := time.Now().UTC()
	for i := range frames {
		posts[i] = uuid.Must(uuid.NewV7())
		f := domain.FeedFrame{PostID: posts[i].String(), PostText: fmt.Sprintf("socialbench direct %d", i),
			AuthorUserID: w.ids[0], Type: domain.EventPostCreated, Position: int64(1e12) + int64(i), CreatedAt: now}
		frames[i], _ = json.Marshal(f)
	}
	ph := newPhase("direct burst", 0, 1, 0)
	register := func(sched time.Time) {
		for _, id := range posts {
			p := &postRec{ph: ph, sched: sched.UnixNano(), done: sched.UnixNano(), expected: int32(len(subs))}
			l.expected.Add(int64(p.expected))
			l.mu.Lock()
			l.posts[id] = p
			l.mu.Unlock()
			ph.accepted = append(ph.accepted, p)
		}
		ph.sent = len(posts)
		ph.statuses["direct"] = len(posts)
	}
	if centrifugoMode == "" {
		conn, err := amqp091.Dial(l.cfg.AMQPURL)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return nil, err
		}
		if err := ch.Confirm(false); err != nil {
			return nil, err
		}
		// Each instance's subscribers: the users of the fleet's sockets there.
		isSub := map[int32]bool{}
		for _, u := range subs {
			isSub[u] = true
		}
		onInstance := make([][]string, len(sys.instances))
		seen := make([]map[int32]bool, len(sys.instances))
		for _, s := range l.fleet.socks {
			if k := s.instance; isSub[s.user] && !seen[k][s.user] {
				if seen[k] == nil {
					seen[k] = map[int32]bool{}
				}
				seen[k][s.user] = true
				onInstance[k] = append(onInstance[k], w.ids[s.user])
			}
		}
		confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, n*len(sys.instances)))
		pids := sys.realtimePIDs()
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGSTOP)
		}
		stopped := true
		cont := func() {
			if stopped {
				for _, pid := range pids {
					_ = syscall.Kill(pid, syscall.SIGCONT)
				}
				stopped = false
			}
		}
		defer cont()
		sent := 0
		for i, frame := range frames {
			for k, to := range onInstance {
				if len(to) == 0 {
					continue
				}
				if err := ch.PublishWithContext(ctx, sys.exchange, sys.instances[k], false, false, amqp091.Publishing{
					ContentType: "application/octet-stream", MessageId: posts[i].String(), DeliveryMode: amqp091.Transient,
					Body: domain.AppendDelivery(domain.NewDeliveries(nil), frame, to),
				}); err != nil {
					return nil, err
				}
				sent++
			}
		}
		for range sent {
			select {
			case c := <-confirms:
				if !c.Ack {
					return nil, errors.New("the broker refused a frame")
				}
			case <-time.After(30 * time.Second):
				return nil, errors.New("no confirm within 30 s")
			}
		}
		ph.start = time.Now()
		register(ph.start)
		cont()
		ph.dur = time.Millisecond // handed over at once
		return ph, nil
	}
	rows := make([][]any, n)
	for i, body := range frames {
		var payload []byte
		if centrifugoMode == "broadcast" {
			chans := make([]string, len(ids))
			for j, id := range ids {
				chans[j] = "feed#" + id
			}
			payload, _ = json.Marshal(map[string]any{"channels": chans, "data": json.RawMessage(body)})
		} else {
			payload, _ = json.Marshal(map[string]any{"channel": "posts_" + w.ids[0], "data": json.RawMessage(body)})
		}
		rows[i] = []any{map[bool]string{true: "broadcast", false: "publish"}[centrifugoMode == "broadcast"], payload, 0}
	}
	conn, err := pgx.Connect(ctx, sys.dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"centrifugo_outbox"}, []string{"method", "payload", "partition"}, pgx.CopyFromRows(rows)); err != nil {
		return nil, fmt.Errorf("fill centrifugo's outbox: %w", err)
	}
	// COPY fires no statement-level NOTIFY of its own here: the row trigger does, per row (folded
	// to one per transaction by PostgreSQL).
	ph.start = time.Now()
	register(ph.start)
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	ph.dur = time.Millisecond // handed over at once
	return ph, nil
}
