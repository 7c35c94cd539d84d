package main

import (
	"sync"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/domain"
)

// brokerProbe is a raw amqp091 consumer on the system's exchange, its queue bound with a realtime
// instance's id: it gets a copy of every message the dispatcher publishes to that instance. Its arrival times split a post's path in two: up to the broker (api, commit, the
// dispatcher's claim, follower read and publish, routing) and after it (realtime: consume,
// hand to the sockets, write, the client's read).
type brokerProbe struct {
	conn *amqp091.Connection
	mu   sync.Mutex
	at   map[uuid.UUID]int64
	done chan struct{}
}

func startBrokerProbe(amqpURL, exchange, key string) (*brokerProbe, error) {
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, err
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err == nil {
		err = ch.QueueBind(q.Name, key, exchange, false, nil)
	}
	var msgs <-chan amqp091.Delivery
	if err == nil {
		msgs, err = ch.Consume(q.Name, "", true, true, false, false, nil)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	p := &brokerProbe{conn: conn, at: map[uuid.UUID]int64{}, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for d := range msgs {
			now := time.Now().UnixNano()
			p.mu.Lock()
			_ = domain.EachDelivery(d.Body, func(frame []byte, _ []string) {
				if id, ok := postIDOf(frame); ok {
					p.at[id] = now
				}
			})
			p.mu.Unlock()
		}
	}()
	return p, nil
}

func (p *brokerProbe) close() {
	p.conn.Close()
	<-p.done
}

// pathStages is where a phase's posts spent their time, per post (ms).
type pathStages struct {
	Posts int `json:"posts"`
	// HTTP is the scheduled send → the 200 (the post transaction committed).
	HTTP latencySummary `json:"http"`
	// Broker is the 200 → the probe's copy (dispatcher and routing; negative when the relay beat
	// the 200 to the client).
	Broker latencySummary `json:"broker_after_http"`
	// First is the probe's copy → the first socket's frame (realtime and the client's read).
	First latencySummary `json:"first_socket_after_broker"`
	// Last is the first socket → the last one (the fan-out's spread).
	Last latencySummary `json:"last_after_first_socket"`
}

// stages matches the probe's arrivals with the phase's posts (after analyzeFrames set their
// first and last frames).
func (p *brokerProbe) stages(l *load, ph *phase) pathStages {
	l.mu.Lock()
	ids := map[*postRec]uuid.UUID{}
	for id, r := range l.posts {
		if r.ph == ph {
			ids[r] = id
		}
	}
	l.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	var httpMs, broker, first, last []float64
	for r, id := range ids {
		at, ok := p.at[id]
		if !ok || r.first == 0 {
			continue
		}
		httpMs = append(httpMs, float64(r.done-r.sched)/1e6)
		broker = append(broker, float64(at-r.done)/1e6)
		first = append(first, float64(r.first-at)/1e6)
		last = append(last, float64(r.last-r.first)/1e6)
	}
	return pathStages{Posts: len(httpMs), HTTP: summarize(httpMs), Broker: summarize(broker),
		First: summarize(first), Last: summarize(last)}
}
