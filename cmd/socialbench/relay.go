package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

// runRelay measures the outbox relay against raw amqp091-go publishing one message per follower
// with pipelined confirms, on the same broker, to the same topology, in the same run.
//
//	go run ./cmd/socialbench relay -posts 1000 -followers 1000
func runRelay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	posts := fs.Int("posts", 1000, "posts in the outbox (N)")
	followers := fs.Int("followers", 1000, "followers of every author (F)")
	authors := fs.Int("authors", 10, "authors, posting round robin; all have the same F followers")
	adminURL := fs.String("db", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL maintenance database (a fresh database is created and dropped)")
	amqpURL := fs.String("amqp", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL")
	baselineMax := fs.Int("baseline-max", 300_000, "cap on the messages of the baseline run (its rate is what counts)")
	window := fs.Int("window", 1000, "baseline: unconfirmed messages in flight")
	batch := fs.Int("batch", 0, "relay BatchSize (0 = default)")
	group := fs.Int("group", 0, "relay PublishGroup (0 = default)")
	pageSize := fs.Int("page", 0, "relay PageSize: followers per message (0 = default 1,000; 1 = no CC)")
	lanes := fs.Int("lanes", 0, "publisher lanes: AMQP channels, followers split among them by id (0 = the dispatcher's default)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the relay run (not the set-up or baseline) to this file")
	skipBaseline := fs.Bool("no-baseline", false, "measure the relay only")
	bound := fs.Int("bound", 0, "followers bound to the consumer's queue, i.e. online (0 = all); every F/bound-th, so each message names some")
	probe := fs.Bool("probe", false, "while the relay runs, another author with one bound follower posts; print how long that post took to arrive")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *authors > *posts {
		*authors = *posts
	}
	if *bound <= 0 || *bound > *followers {
		*bound = *followers
	}
	b := &relayBench{posts: *posts, followers: *followers, authors: *authors, bound: *bound, probe: *probe, amqpURL: *amqpURL}
	if err := b.setUp(ctx, *adminURL); err != nil {
		b.tearDown()
		return err
	}
	defer b.tearDown()

	fmt.Printf("relay benchmark: %d posts × %d followers (%d authors, %d followers bound), %d follower deliveries; %s\n",
		b.posts, b.followers, b.authors, b.bound, b.posts*b.followers, b.broker)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	relayDur, err := b.runRelay(ctx, *batch, *group, *pageSize, *lanes)
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	total := float64(b.posts * b.followers)
	relayRate := total / relayDur.Seconds()
	fmt.Printf("relay:    %10.0f deliveries/s  %9.0f posts/s  (%s for everything)\n", relayRate, float64(b.posts)/relayDur.Seconds(), relayDur.Round(time.Millisecond))
	if b.probe {
		if lat, ok := b.probeLatency(); ok {
			fmt.Printf("probe:    another author's post, created %s after the relay's first delivery, arrived %s after it was created\n",
				probeDelay, lat.Round(time.Millisecond))
		} else {
			fmt.Printf("probe:    another author's post did not arrive before the relay finished\n")
		}
	}

	if *skipBaseline {
		return nil
	}
	n := min(b.posts*b.followers, *baselineMax)
	baseDur, err := b.runBaseline(ctx, n, *window)
	if err != nil {
		return err
	}
	baseRate := float64(n) / baseDur.Seconds()
	fmt.Printf("baseline: %10.0f deliveries/s  (raw amqp091-go, one message per follower, %d in flight, %d messages in %s)\n",
		baseRate, *window, n, baseDur.Round(time.Millisecond))
	fmt.Printf("ratio:    %.2f (relay deliveries/s ÷ baseline)\n", relayRate/baseRate)

	// The broker's own ceiling for the relay's message shape: the same routing key + CC chunks
	// published raw, with nothing read from or written to PostgreSQL. Relay ÷ this is how much of
	// what RabbitMQ can route our code delivers; baseline ÷ this is what CC buys on this broker.
	// Same number of posts as the relay run: shorter runs measured the broker ~10 % slower.
	// Skipped for huge fan-outs on RabbitMQ < 3.11, which takes minutes per post there (it scans
	// every binding per CC key; docs/performance.md).
	if b.followers > 1 && (b.followers <= 10_000 || amqp.ShapeFor(b.broker).FollowersPerMessage > 1) {
		ccDur, err := b.runCCCeiling(ctx, b.posts, *pageSize, *window)
		if err != nil {
			return err
		}
		ccRate := float64(b.posts*b.followers) / ccDur.Seconds()
		fmt.Printf("raw CC:   %10.0f deliveries/s  (raw amqp091-go, the relay's messages: %d posts × %d followers in %s)\n",
			ccRate, b.posts, b.followers, ccDur.Round(time.Millisecond))
		fmt.Printf("relay ÷ raw CC: %.2f\n", relayRate/ccRate)
	}
	return nil
}

// runCCCeiling publishes posts × followers deliveries the way the relay does (one message per
// chunk of pageSize followers: routing key + CC array), pipelined with window messages in flight,
// without the relay: the broker's ceiling for this workload.
func (b *relayBench) runCCCeiling(ctx context.Context, posts, pageSize, window int) (time.Duration, error) {
	if pageSize == 0 {
		pageSize = 1000
	}
	type chunk struct {
		key     string
		headers amqp091.Table
	}
	var chunks []chunk
	for ids := b.followerIDs; len(ids) > 0; {
		n := min(pageSize, len(ids))
		c := chunk{key: ids[0]}
		if n > 1 {
			cc := make([]interface{}, 0, n-1)
			for _, id := range ids[1:n] {
				cc = append(cc, id)
			}
			c.headers = amqp091.Table{amqp.HeaderCC: cc}
		}
		chunks = append(chunks, c)
		ids = ids[n:]
	}
	var postID string
	return b.publishRaw(ctx, "raw CC", posts*len(chunks), window, int64(posts*b.followers), func(i int) (string, amqp091.Publishing) {
		c := chunks[i%len(chunks)]
		if i%len(chunks) == 0 {
			postID = uuid.NewString() // one message id per post, as the relay does
		}
		return c.key, amqp091.Publishing{Headers: c.headers, ContentType: "application/json",
			DeliveryMode: amqp091.Transient, MessageId: postID, Body: b.frame}
	})
}

type relayBench struct {
	posts, followers, authors int
	bound                     int  // followers bound to queue (online)
	probe                     bool // measure another author's post during the relay
	amqpURL                   string
	broker                    amqp.Broker
	cpu                       *cpuParties

	admin    string
	dbName   string
	pool     *pgxpool.Pool
	amqpConn *amqp091.Connection
	ch       *amqp091.Channel
	queue    string
	// exchange: bound to queue with the bound followers' ids. The relay, the baseline and the
	// raw CC ceiling run one after the other on it, each waiting for all of its deliveries.
	exchange    string
	followerIDs []string
	frame       []byte
	counted     atomic.Int64
	firstAt     atomic.Int64 // unix nanoseconds of the first counted delivery since reset

	// The probe: an author of its own with one follower (bound), whose post is inserted while the
	// relay runs; the consumer stamps its arrival.
	probeAuthor, probeFollower string
	probeArrived               atomic.Int64 // unix nanoseconds; 0 until it arrives
	probeCreated               atomic.Int64
}

func (b *relayBench) setUp(ctx context.Context, adminURL string) error {
	b.admin = adminURL
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer admin.Close(ctx)
	b.dbName = "socialbench_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+b.dbName); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	u, _ := url.Parse(adminURL)
	u.Path = "/" + b.dbName
	if b.pool, err = postgres.Open(ctx, u.String(), postgres.PoolConfig{MaxConns: 16}); err != nil {
		return err
	}
	if _, err := postgres.Migrate(ctx, b.pool); err != nil {
		return err
	}
	start := time.Now()
	if err := b.fill(ctx); err != nil {
		return err
	}
	fmt.Printf("set-up: users, friendships and outbox filled in %s; ", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if b.amqpConn, err = amqp091.Dial(b.amqpURL); err != nil {
		return fmt.Errorf("dial rabbitmq: %w", err)
	}
	if b.ch, err = b.amqpConn.Channel(); err != nil {
		return err
	}
	b.broker = amqp.BrokerOf(b.amqpConn, "")
	b.cpu = newCPUParties(b.pool, b.dbName, b.amqpURL)
	b.exchange = "bench.relay." + uuid.NewString()[:8]
	if err := b.ch.ExchangeDeclare(b.exchange, amqp.ExchangeKind, true, false, false, false, nil); err != nil {
		return err
	}
	// One queue with the bound followers: like one realtime instance with them online.
	q, err := b.ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return err
	}
	b.queue = q.Name
	keys := b.boundIDs()
	if b.probe {
		keys = append(keys, b.probeFollower)
	}
	for i, f := range keys {
		if err := b.ch.QueueBind(q.Name, f, b.exchange, i < len(keys)-1, nil); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
	}
	fmt.Printf("%d bindings in %s\n", len(keys), time.Since(start).Round(time.Millisecond))
	return b.consume()
}

// fill creates authors and followers, the friendships and N post events with their outbox rows,
// by bulk SQL (the API is not what is measured here).
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
	postIDs, eventIDs, postAuthors, payloads := newIDs(b.posts), newIDs(b.posts), make([]string, b.posts), make([][]byte, b.posts)
	for i := range b.posts {
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
		INSERT INTO outbox (event_id, author_user_id) SELECT event, author FROM p ORDER BY n`,
		postIDs, eventIDs, postAuthors, payloads)
	if err != nil {
		return fmt.Errorf("fill outbox: %w", err)
	}
	// A live outbox has planner statistics (autovacuum); a freshly bulk-filled one has none for
	// a minute, and the relay's plans would be measured against guesses.
	if _, err := b.pool.Exec(ctx, "ANALYZE"); err != nil {
		return fmt.Errorf("analyze: %w", err)
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
	}
	return nil
}

// boundIDs are the followers bound to the queue: every F/bound-th in id order, so that every
// message of up to 1,000 consecutive followers names some of them and is delivered.
func (b *relayBench) boundIDs() []string {
	if b.bound >= len(b.followerIDs) {
		return b.followerIDs
	}
	out := make([]string, 0, b.bound)
	step := float64(len(b.followerIDs)) / float64(b.bound)
	for i := range b.bound {
		out = append(out, b.followerIDs[int(float64(i)*step)])
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

// consume counts follower deliveries: one per user named in the routing key and CC of each
// delivered message (one realtime instance would hand the frame to each of them).
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
			if b.probe && d.RoutingKey == b.probeFollower {
				b.probeArrived.CompareAndSwap(0, time.Now().UnixNano())
				continue
			}
			b.firstAt.CompareAndSwap(0, time.Now().UnixNano())
			n := int64(1)
			if cc, ok := d.Headers[amqp.HeaderCC].([]interface{}); ok {
				n += int64(len(cc))
			}
			b.counted.Add(n)
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

func (b *relayBench) runRelay(ctx context.Context, batch, group, pageSize, lanes int) (time.Duration, error) {
	pub, err := amqp.NewPublisher(amqp.PublisherConfig{Dialer: amqp.NewDialer([]string{b.amqpURL}), Logger: quietLog(), Lanes: lanes})
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	bulk, err := amqp.NewPublisher(amqp.PublisherConfig{Dialer: amqp.NewDialer([]string{b.amqpURL}), Logger: quietLog(), Lanes: lanes})
	if err != nil {
		return 0, err
	}
	defer bulk.Close()
	r, err := outbox.NewRelay(outbox.Config{Pool: b.pool, Publisher: pub, BulkPublisher: bulk, Exchange: b.exchange, Logger: quietLog(),
		BatchSize: batch, PublishGroup: group, PageSize: pageSize})
	if err != nil {
		return 0, err
	}
	// The publishers connect before the clock starts (the baselines' connection is open too);
	// the relay's own start (a database connection, the leader lock) is timed.
	for _, p := range []*amqp.Publisher{pub, bulk} {
		if err := p.Ready(ctx); err != nil {
			return 0, err
		}
	}
	b.counted.Store(0)
	b.firstAt.Store(0)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	cpuBefore := b.cpu.sample(ctx)
	start := time.Now()
	go func() { done <- r.Run(rctx) }()
	probeErr := make(chan error, 1)
	if b.probe {
		go func() { probeErr <- b.postProbe(rctx) }()
	}
	err = b.waitCount(ctx, int64(b.posts*b.followers))
	d := time.Since(start)
	if err == nil {
		// Sampled before the relay stops: its backends (leader, pool) are still there.
		fmt.Printf("          CPU ms per 1,000 posts: %s\n", b.cpu.sample(ctx).perThousand(cpuBefore, b.posts))
	}
	if first := b.firstAt.Load(); first > 0 && err == nil {
		fmt.Printf("          relay start (database connection, leader lock, first claim) to first delivery: %s\n",
			time.Duration(first-start.UnixNano()).Round(time.Millisecond))
	}
	if err == nil && b.probe {
		if err = <-probeErr; err == nil {
			// The probe may arrive after the big fan-out (that is what is measured): wait for it.
			deadline := time.Now().Add(time.Minute)
			for b.probeArrived.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
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

// runBaseline publishes n messages, one per follower (routing key = follower id, no CC), each
// with the frame as body, keeping window unconfirmed messages in flight.
func (b *relayBench) runBaseline(ctx context.Context, n, window int) (time.Duration, error) {
	// Only bound (online) followers' messages are delivered; the others are routed nowhere.
	bound := make(map[string]bool, b.bound)
	for _, id := range b.boundIDs() {
		bound[id] = true
	}
	var want int64
	for i := range n {
		if bound[b.followerIDs[i%len(b.followerIDs)]] {
			want++
		}
	}
	return b.publishRaw(ctx, "baseline", n, window, want, func(i int) (string, amqp091.Publishing) {
		return b.followerIDs[i%len(b.followerIDs)], amqp091.Publishing{ContentType: "application/json",
			DeliveryMode: amqp091.Transient, MessageId: uuid.NewString(), Body: b.frame}
	})
}

// publishRaw publishes n messages (message i from msg) to the baseline exchange with raw
// amqp091-go, keeping window unconfirmed messages in flight, and returns the time until the
// broker confirmed all of them and the consumer counted want deliveries.
func (b *relayBench) publishRaw(ctx context.Context, name string, n, window int, want int64, msg func(i int) (string, amqp091.Publishing)) (time.Duration, error) {
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
	cpuBefore := b.cpu.sample(ctx)
	start := time.Now()
	for i := range n {
		if len(inFlight) == window {
			if !inFlight[0].Wait() {
				return 0, fmt.Errorf("%s: message nacked", name)
			}
			inFlight = inFlight[1:]
		}
		key, m := msg(i)
		dc, err := ch.PublishWithDeferredConfirm(b.exchange, key, false, false, m)
		if err != nil {
			return 0, err
		}
		inFlight = append(inFlight, dc)
	}
	for _, dc := range inFlight {
		dc.Wait()
	}
	if err := b.waitCount(ctx, want); err != nil {
		return 0, err
	}
	d := time.Since(start)
	fmt.Printf("          %s CPU ms per 1,000 messages: %s\n", name, b.cpu.sample(ctx).perThousand(cpuBefore, n))
	return d, nil
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
	if b.dbName == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if admin, err := pgx.Connect(ctx, b.admin); err == nil {
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+b.dbName+" WITH (FORCE)")
		_ = admin.Close(ctx)
	}
}

func quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
