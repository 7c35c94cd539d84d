package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/cmd/socialbench/internal/bench"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

// runRelay measures the outbox relay against raw amqp091-go publishing one message per online
// follower with pipelined confirms, on the same broker, to the same topology, in the same run.
// The online followers have presence rows on --instances realtime instances (ids rt-0, rt-1…),
// whose routing keys one counting queue is bound with; the relay sends each instance its feed
// messages (design.md §3). Deliveries are online followers reached.
//
//	go run ./cmd/socialbench relay --posts 1000 --followers 1000
func runRelay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	var svc bench.Services
	svc.Flags(fs)
	posts := fs.Int("posts", 1000, "posts in the outbox (N)")
	followers := fs.Int("followers", 1000, "followers of every author (F)")
	authors := fs.Int("authors", 10, "authors, posting round robin; all have the same F followers")
	baselineMax := fs.Int("baseline-max", 300_000, "cap on the messages of the baseline run (its rate is what counts)")
	window := fs.Int("window", 1000, "baseline: unconfirmed messages in flight")
	instances := fs.Int("instances", 2, "realtime instances the online followers are spread over")
	skipBaseline := fs.Bool("no-baseline", false, "measure the relay only")
	bound := fs.Int("bound", 0, "followers online, i.e. with a presence row (0 = all); every F/bound-th")
	probe := fs.Bool("probe", false, "while the relay runs, another author with one online follower posts; print how long that post took to arrive")
	live := fs.Bool("live", false, "the relay runs and is warm (it relayed a first post) before the N posts commit, in one transaction; "+
		"time from that commit, not from the relay's start (with --probe, the other author's post commits right after them)")
	rounds := fs.Int("rounds", 1, "with --live: commit N new posts by the same authors this many times, each round once the previous one arrived, and print each round "+
		"(the first reads the followers' index pages into PostgreSQL's buffers; later rounds find them there)")
	publisher := fs.String("publisher", publisherOurs, "the relay's message.Publisher: "+publisherOurs+" (adapters/amqp) or "+publisherWatermill+
		" (v3, confirms on, transient, a channel per instance); comma-separated for several in one run, each on a fresh database and exchange in the order given, the baseline once after the last")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *authors > *posts {
		*authors = *posts
	}
	if *bound <= 0 || *bound > *followers {
		*bound = *followers
	}
	if *instances < 1 {
		return errors.New("--instances must be at least 1")
	}
	if *rounds < 1 || (*rounds > 1 && !*live) {
		return errors.New("--rounds must be at least 1, and more than 1 only with --live")
	}
	kinds := strings.Split(*publisher, ",")
	for _, k := range kinds {
		if k != publisherOurs && k != publisherWatermill {
			return fmt.Errorf("unknown --publisher %q (want %s and/or %s)", k, publisherOurs, publisherWatermill)
		}
	}
	// Every publisher relays a fresh outbox on a fresh exchange; the bench of the last one also
	// runs the baseline.
	var b *relayBench
	defer func() {
		if b != nil {
			b.tearDown()
		}
	}()
	rates := make(map[string]float64)
	for _, kind := range kinds {
		if b != nil {
			b.tearDown()
		}
		b = &relayBench{posts: *posts, followers: *followers, authors: *authors, bound: *bound, probe: *probe || *live, live: *live, rounds: *rounds, svc: svc}
		for i := range *instances {
			b.instances = append(b.instances, fmt.Sprintf("rt-%d", i))
		}
		if err := b.setUp(ctx); err != nil {
			return err
		}
		fmt.Printf("relay benchmark: %d posts × %d followers (%d authors, %d followers online on %d instances), %d follower deliveries; publisher %s\n",
			b.posts, b.followers, b.authors, b.bound, len(b.instances), b.posts*b.bound, kind)
		rate, err := b.measureRelay(ctx, kind)
		if err != nil {
			return err
		}
		rates[kind] = rate
	}
	if len(rates) == 2 {
		fmt.Printf("publishers: %s ÷ %s = %.2f (relay deliveries/s)\n", publisherWatermill, publisherOurs, rates[publisherWatermill]/rates[publisherOurs])
	}
	if *skipBaseline {
		return nil
	}
	n := min(b.posts*b.bound, *baselineMax)
	baseDur, err := b.runBaseline(ctx, n, *window)
	if err != nil {
		return err
	}
	baseRate := float64(n) / baseDur.Seconds()
	fmt.Printf("baseline: %10.0f deliveries/s  (raw amqp091-go, one message per online follower, %d in flight, %d messages in %s)\n",
		baseRate, *window, n, baseDur.Round(time.Millisecond))
	for _, kind := range kinds {
		fmt.Printf("ratio:    %.2f (relay deliveries/s ÷ baseline; publisher %s)\n", rates[kind]/baseRate, kind)
	}
	return nil
}

// measureRelay relays b's outbox through the publisher kind and prints the relay's figures;
// it returns follower deliveries/s.
func (b *relayBench) measureRelay(ctx context.Context, kind string) (float64, error) {
	relayDur, err := b.runRelay(ctx, kind)
	if err != nil {
		return 0, err
	}
	relayRate := float64(b.posts*b.bound) / relayDur.Seconds()
	if b.live { // liveRounds printed each round; relayDur is the last one's
		return relayRate, nil
	}
	fmt.Printf("relay:    %10.0f deliveries/s  %9.0f posts/s  (%s for everything; publisher %s)\n", relayRate, float64(b.posts)/relayDur.Seconds(), relayDur.Round(time.Millisecond), kind)
	if b.probe {
		if lat, ok := b.probeLatency(); ok {
			fmt.Printf("probe:    another author's post, created %s after the relay's first delivery, arrived %s after it was created\n", probeDelay, lat.Round(time.Millisecond))
		} else {
			fmt.Printf("probe:    another author's post did not arrive before the relay finished\n")
		}
	}
	return relayRate, nil
}

type relayBench struct {
	posts, followers, authors int
	bound                     int      // followers online (with a presence row)
	instances                 []string // realtime instance ids the online followers are spread over
	probe                     bool     // measure another author's post during the relay
	live                      bool     // the outbox rows are written once the relay runs warm
	rounds                    int      // live: how many times the N posts are committed
	svc                       bench.Services

	dbName   string
	pool     *pgxpool.Pool
	amqpConn *amqp091.Connection
	ch       *amqp091.Channel
	queue    string
	// exchange: bound to queue with the instance ids. The relay, the baseline and the raw
	// instance ceiling run one after the other on it, each waiting for all of its deliveries.
	exchange    string
	followerIDs []string
	frame       []byte
	counted     atomic.Int64
	firstAt     atomic.Int64 // unix nanoseconds of the first counted delivery since reset

	// The probe: an author of its own with one follower (online on the first instance), whose
	// post is inserted while the relay runs; the consumer stamps its arrival.
	probeAuthor, probeFollower string
	probeArrived               atomic.Int64 // unix nanoseconds; 0 until it arrives
	probeCreated               atomic.Int64
	// Live mode: the events whose outbox rows are written once the relay runs, N per round.
	liveEvents, liveAuthors []string
}

func (b *relayBench) setUp(ctx context.Context) error {
	var dbURL string
	var err error
	if b.dbName, dbURL, err = bench.CreateDatabase(ctx, b.svc.AdminURL); err != nil {
		return err
	}
	if b.pool, err = postgres.Open(ctx, dbURL, postgres.PoolConfig{MaxConns: 16}); err != nil {
		return err
	}
	if _, err := postgres.Migrate(ctx, b.pool); err != nil {
		return err
	}
	start := time.Now()
	if err := b.fill(ctx); err != nil {
		return err
	}
	fmt.Printf("set-up: users, friendships, presence and outbox filled in %s; ", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if b.amqpConn, err = amqp091.Dial(b.svc.AMQPURL); err != nil {
		return fmt.Errorf("dial rabbitmq: %w", err)
	}
	if b.ch, err = b.amqpConn.Channel(); err != nil {
		return err
	}
	b.exchange = "bench.relay." + uuid.NewString()[:8]
	// Direct and durable, as the relay's publisher declares it.
	if err := b.ch.ExchangeDeclare(b.exchange, "direct", true, false, false, false, nil); err != nil {
		return err
	}
	// One queue bound with every instance's id: it counts for all the instances.
	q, err := b.ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return err
	}
	b.queue = q.Name
	for _, id := range b.instances {
		if err := b.ch.QueueBind(q.Name, id, b.exchange, false, nil); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
	}
	fmt.Printf("queue bound in %s\n", time.Since(start).Round(time.Millisecond))
	return b.consume()
}

// fill creates authors and followers, the friendships, the online followers' presence and N post
// events with their outbox rows, by bulk SQL (the API is not what is measured here).
func (b *relayBench) fill(ctx context.Context) error {
	authorIDs := newIDs(b.authors)
	b.followerIDs = newIDs(b.followers)
	users := append(append([]string{}, authorIDs...), b.followerIDs...)
	if _, err := b.pool.Exec(ctx, `INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
		SELECT id, 'Bench', 'User', '2000-01-01', '', 'City', 'x', 1 FROM unnest($1::uuid[]) AS id`, users); err != nil {
		return fmt.Errorf("insert users: %w", err)
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO friendships (user_id, friend_id)
		SELECT f, a FROM unnest($1::uuid[]) AS a, unnest($2::uuid[]) AS f`, authorIDs, b.followerIDs); err != nil {
		return fmt.Errorf("insert friendships: %w", err)
	}
	// Background follows, each follower of one other, so that the planner's statistics see a
	// graph of many authors, as a live one is (with the authors alone, friend_id would have a
	// handful of distinct values and a generic plan would look for one author's followers by
	// scanning the whole primary key).
	if _, err := b.pool.Exec(ctx, `INSERT INTO friendships (user_id, friend_id)
		SELECT ids[i], ids[1 + (i::bigint * 7919) % n] FROM (SELECT $1::uuid[] AS ids, cardinality($1::uuid[]) AS n) s, generate_series(1, n) i
		WHERE i <> 1 + (i::bigint * 7919) % n`, b.followerIDs); err != nil {
		return fmt.Errorf("insert background friendships: %w", err)
	}
	n := b.posts * max(1, b.rounds)
	postIDs, eventIDs, postAuthors, payloads := newIDs(n), newIDs(n), make([]string, n), make([][]byte, n)
	for i := range n {
		postAuthors[i] = authorIDs[i%b.authors]
		payloads[i], _ = json.Marshal(domain.PostChanged{PostID: postIDs[i], AuthorUserID: postAuthors[i], Text: fmt.Sprintf("benchmark post %d", i)})
	}
	b.frame, _ = json.Marshal(domain.NewFeedFrame(domain.EventPostCreated, domain.PostChanged{PostID: postIDs[0], AuthorUserID: postAuthors[0], Text: "benchmark post 0"}, 1, time.Now()))
	_, err := b.pool.Exec(ctx, `
		WITH p AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::jsonb[]) WITH ORDINALITY AS p(post, event, author, payload, n)),
		ev AS (INSERT INTO events (id, aggregate_id, aggregate_version, type, payload)
		       SELECT event, post, 1, 'post.created', payload FROM p ORDER BY n),
		ps AS (INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version)
		       SELECT post, author, payload->>'text', now(), now(), 1 FROM p)
		INSERT INTO outbox (event_id, author_user_id) SELECT event, author FROM p WHERE NOT $5 ORDER BY n`,
		postIDs, eventIDs, postAuthors, payloads, b.live)
	if err != nil {
		return fmt.Errorf("fill outbox: %w", err)
	}
	if b.live {
		b.liveEvents, b.liveAuthors = eventIDs, postAuthors
	}
	// The instances' leases outlast the run: nothing renews them.
	if _, err := b.pool.Exec(ctx, `INSERT INTO realtime_instances (id, lease_until) SELECT id, now() + interval '1 day' FROM unnest($1::text[]) AS id`,
		b.instances); err != nil {
		return fmt.Errorf("insert realtime instances: %w", err)
	}
	var online, instances []string
	for i, ids := range b.online() {
		for _, id := range ids {
			online, instances = append(online, id), append(instances, b.instances[i])
		}
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO presence (user_id, instance_id) SELECT * FROM unnest($1::uuid[], $2::text[])`,
		online, instances); err != nil {
		return fmt.Errorf("insert presence: %w", err)
	}
	// A live database has planner statistics and visibility maps (autovacuum); freshly
	// bulk-filled tables have neither for a minute, so the relay's plans would be measured
	// against guesses and its index-only reads would visit the heap (a 1,000,000-follower post
	// routed to 10,000 online took ~400 ms before the vacuum, ~150 ms after).
	if _, err := b.pool.Exec(ctx, "VACUUM (ANALYZE) users, friendships, presence, realtime_instances, outbox, events"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	if b.probe {
		ids := newIDs(2)
		b.probeAuthor, b.probeFollower = ids[0], ids[1]
		if _, err := b.pool.Exec(ctx, `INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
			SELECT id, 'Probe', 'User', '2000-01-01', '', 'City', 'x', 1 FROM unnest($1::uuid[]) AS id`, ids); err != nil {
			return fmt.Errorf("insert probe users: %w", err)
		}
		if _, err := b.pool.Exec(ctx, `INSERT INTO friendships (user_id, friend_id) VALUES ($1, $2)`, b.probeFollower, b.probeAuthor); err != nil {
			return fmt.Errorf("insert probe friendship: %w", err)
		}
		if _, err := b.pool.Exec(ctx, `INSERT INTO presence (user_id, instance_id) VALUES ($1, $2)`, b.probeFollower, b.instances[0]); err != nil {
			return fmt.Errorf("insert probe presence: %w", err)
		}
	}
	return nil
}

// online are the online followers of each instance: every F/bound-th follower in id order, dealt
// to the instances in turn.
func (b *relayBench) online() [][]string {
	out := make([][]string, len(b.instances))
	step := float64(len(b.followerIDs)) / float64(b.bound)
	for i := range b.bound {
		k := i % len(out)
		out[k] = append(out[k], b.followerIDs[int(float64(i)*step)])
	}
	return out
}

// probeDelay is how long after the relay's first delivery the probe post is created: the big
// fan-out is under way by then.
const probeDelay = 50 * time.Millisecond

// postProbe inserts the probe author's post (event, post and outbox row in one transaction,
// as the API writes them; the outbox trigger NOTIFYs the relay) once the relay delivered its first message.
func (b *relayBench) postProbe(ctx context.Context) error {
	for b.counted.Load() == 0 {
		if ctx.Err() != nil {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(probeDelay)
	return b.insertProbe(ctx)
}

// insertProbe commits a post of the probe author, as the API writes it.
func (b *relayBench) insertProbe(ctx context.Context) error {
	post, event := newIDs(1)[0], newIDs(1)[0]
	payload, _ := json.Marshal(domain.PostChanged{PostID: post, AuthorUserID: b.probeAuthor, Text: "probe"})
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO events (id, aggregate_id, aggregate_version, type, payload) VALUES ($1, $2, 1, 'post.created', $3)`, event, post, payload); err != nil {
		return fmt.Errorf("probe event: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version) VALUES ($1, $2, 'probe', now(), now(), 1)`, post, b.probeAuthor); err != nil {
		return fmt.Errorf("probe post: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (event_id, author_user_id) VALUES ($1, $2)`, event, b.probeAuthor); err != nil {
		return fmt.Errorf("probe outbox: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	b.probeCreated.Store(time.Now().UnixNano())
	return nil
}

// goLive warms the running relay with a probe post (its statements prepared, its connections
// open), then commits round's N posts' outbox rows in one transaction and returns when it did.
func (b *relayBench) goLive(ctx context.Context, round int) (time.Time, error) {
	b.probeArrived.Store(0)
	if err := b.insertProbe(ctx); err != nil {
		return time.Time{}, err
	}
	if !b.waitProbe() {
		return time.Time{}, errors.New("the relay did not relay its warm-up post within a minute")
	}
	b.probeArrived.Store(0)
	from, to := round*b.posts, (round+1)*b.posts
	if _, err := b.pool.Exec(ctx, `INSERT INTO outbox (event_id, author_user_id) SELECT * FROM unnest($1::uuid[], $2::uuid[])`,
		b.liveEvents[from:to], b.liveAuthors[from:to]); err != nil {
		return time.Time{}, fmt.Errorf("live outbox rows: %w", err)
	}
	return time.Now(), nil
}

// liveRounds commits the N posts' outbox rows once per round, each after the previous round and
// its probe arrived, with the probe author's post committed right behind them (it waits for their
// batch), and prints each round's times from that commit. It returns the last round's time to
// the last delivery, or an error if a round's posts or probe did not all arrive.
func (b *relayBench) liveRounds(ctx context.Context) (time.Duration, error) {
	var d time.Duration
	for round := range b.rounds {
		b.counted.Store(0)
		b.firstAt.Store(0)
		start, err := b.goLive(ctx, round)
		if err != nil {
			return 0, err
		}
		if err := b.insertProbe(ctx); err != nil {
			return 0, err
		}
		if err := b.waitCount(ctx, int64(b.posts*b.bound)); err != nil {
			return 0, err
		}
		d = time.Since(start)
		if !b.waitProbe() {
			return 0, fmt.Errorf("round %d: another author's post did not arrive within a minute", round+1)
		}
		lat, _ := b.probeLatency()
		fmt.Printf("round %d:  from the posts' commit: first delivery %s, all %s; another author's post committed right after them arrived %s after its commit\n",
			round+1, time.Duration(b.firstAt.Load()-start.UnixNano()).Round(time.Millisecond), d.Round(time.Millisecond), lat.Round(time.Millisecond))
	}
	return d, nil
}

// waitProbe waits up to a minute for the probe post and says whether it arrived: it may arrive
// after the big fan-out (that is what is measured).
func (b *relayBench) waitProbe() bool {
	deadline := time.Now().Add(time.Minute)
	for b.probeArrived.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return b.probeArrived.Load() != 0
}

func (b *relayBench) probeLatency() (time.Duration, bool) {
	arrived, created := b.probeArrived.Load(), b.probeCreated.Load()
	if arrived == 0 || created == 0 {
		return 0, false
	}
	return time.Duration(arrived - created), true
}

func newIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = uuid.Must(uuid.NewV7()).String()
	}
	return out
}

// consume counts follower deliveries: one per user named in each delivery of each feed message
// (the realtime instance would hand the frame to each of them); the probe's stamps its arrival.
func (b *relayBench) consume() error {
	ch, err := b.amqpConn.Channel()
	if err != nil {
		return err
	}
	ds, err := ch.Consume(b.queue, "", true, true, false, false, nil)
	if err != nil {
		return err
	}
	go func() {
		for d := range ds {
			_ = domain.EachDelivery(d.Body, func(_ []byte, to domain.Recipients) {
				if b.probe && to.Len() == 1 && to.Strings()[0] == b.probeFollower {
					b.probeArrived.CompareAndSwap(0, time.Now().UnixNano())
					return
				}
				b.firstAt.CompareAndSwap(0, time.Now().UnixNano())
				b.counted.Add(int64(to.Len()))
			})
		}
	}()
	return nil
}

// waitCount waits until want deliveries were counted since reset, or 10 minutes.
func (b *relayBench) waitCount(ctx context.Context, want int64) error {
	deadline := time.Now().Add(10 * time.Minute)
	for b.counted.Load() < want {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d deliveries arrived", b.counted.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func (b *relayBench) runRelay(ctx context.Context, kind string) (time.Duration, error) {
	// The publisher connects before the clock starts (the baselines' connection is open too);
	// the relay's own start (a database connection, the leader lock) is timed.
	pub, err := b.newRelayPublisher(ctx, kind)
	if err != nil {
		return 0, err
	}
	defer pub.close()
	r, err := outbox.NewRelay(outbox.Config{Pool: b.pool, Publisher: pub.pub, Refused: pub.refused, Logger: quietLog()})
	if err != nil {
		return 0, err
	}
	b.counted.Store(0)
	b.firstAt.Store(0)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Run(rctx) }()
	var d time.Duration
	if b.live {
		d, err = b.liveRounds(ctx)
	} else {
		probeErr := make(chan error, 1)
		if b.probe {
			go func() { probeErr <- b.postProbe(rctx) }()
		}
		err = b.waitCount(ctx, int64(b.posts*b.bound))
		d = time.Since(start)
		if first := b.firstAt.Load(); first > 0 && err == nil {
			fmt.Printf("          relay start (database connection, leader lock, first claim) to first delivery: %s\n", time.Duration(first-start.UnixNano()).Round(time.Millisecond))
		}
		if err == nil && b.probe {
			if err = <-probeErr; err == nil {
				b.waitProbe()
			}
		}
	}
	cancel()
	if rerr := <-done; rerr != nil {
		return 0, rerr
	}
	if err != nil {
		return 0, err
	}
	var pending int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE status <> 'relayed'`).Scan(&pending); err == nil && pending > 0 {
		fmt.Printf("note: %d rows not marked relayed when the last delivery arrived\n", pending)
	}
	return d, nil
}

// runBaseline publishes n messages with raw amqp091-go, one per online follower (a feed message
// naming that follower alone, routing key = its instance), each with the frame, keeping window
// unconfirmed messages in flight; it returns the time until the broker confirmed them all and the
// consumer counted them.
func (b *relayBench) runBaseline(ctx context.Context, n, window int) (time.Duration, error) {
	type one struct {
		key  string
		body []byte
	}
	var msgs []one
	for i, ids := range b.online() {
		for k := range ids {
			msgs = append(msgs, one{b.instances[i], domain.AppendDelivery(domain.NewDeliveries(nil), b.frame, ids[k:k+1])})
		}
	}
	ch, err := b.amqpConn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return 0, err
	}
	b.counted.Store(0)
	inFlight := make([]*amqp091.DeferredConfirmation, 0, window)
	start := time.Now()
	for i := range n {
		if len(inFlight) == window {
			if !inFlight[0].Wait() {
				return 0, errors.New("baseline: message nacked")
			}
			inFlight = inFlight[1:]
		}
		m := msgs[i%len(msgs)]
		dc, err := ch.PublishWithDeferredConfirm(b.exchange, m.key, false, false, amqp091.Publishing{
			ContentType: "application/octet-stream", DeliveryMode: amqp091.Transient, MessageId: uuid.NewString(), Body: m.body})
		if err != nil {
			return 0, err
		}
		inFlight = append(inFlight, dc)
	}
	for _, dc := range inFlight {
		dc.Wait()
	}
	if err := b.waitCount(ctx, int64(n)); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func (b *relayBench) tearDown() {
	if b.ch != nil {
		_ = b.ch.ExchangeDelete(b.exchange, false, false)
	}
	if b.amqpConn != nil {
		_ = b.amqpConn.Close()
	}
	if b.pool != nil {
		b.pool.Close()
	}
	if b.dbName != "" {
		bench.DropDatabase(b.svc.AdminURL, b.dbName)
	}
}

func quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
