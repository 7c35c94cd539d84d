package outbox

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// relayMetrics are the relay's counters and timings. (The backlog gauges belong to the status collector.)
type relayMetrics struct {
	relayedRows       prometheus.Counter
	publishedMessages prometheus.Counter
	publishErrors     prometheus.Counter
	deadRows          prometheus.Counter
	latency           prometheus.Histogram
	// claims by what they found: rows, or nothing (a round trip for no row).
	claims      *prometheus.CounterVec
	claimsRows  prometheus.Counter
	claimsEmpty prometheus.Counter
	// How long each phase of a batch with rows took, by phase.
	phases                             *prometheus.HistogramVec
	claimed, routed, published, marked prometheus.Observer
	// Full reads of presence into the leader's copy (presenceView).
	presenceLoads prometheus.Histogram
}

func newRelayMetrics(reg prometheus.Registerer) (*relayMetrics, error) {
	m := &relayMetrics{
		relayedRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_outbox_relayed_rows_total",
			Help: "Outbox rows whose messages the broker confirmed, marked relayed.",
		}),
		publishedMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_outbox_published_messages_total",
			Help: "Messages confirmed by the broker (one per realtime instance per claimed batch, more when one would pass 1 MiB).",
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_outbox_publish_errors_total",
			Help: "Messages not confirmed: nacked by the broker, or lost with the connection.",
		}),
		deadRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_outbox_dead_rows_total",
			Help: "Outbox rows parked as dead after the maximum number of refused attempts.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "social_outbox_relay_latency_seconds",
			Help:    "Time from the outbox row's creation to the broker's confirm of its last message.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "social_outbox_claims_total",
			Help: "Claims by the leader, by whether they found rows (found=\"rows\") or nothing (found=\"none\").",
		}, []string{"found"}),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "social_outbox_batch_phase_seconds",
			Help: "Duration of each phase of a claimed batch with rows: claim (positions assigned and committed), route (online recipients read), " +
				"publish (messages encoded and published until the broker confirmed them or the publish failed), mark (rows marked relayed).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"phase"}),
		presenceLoads: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "social_outbox_presence_load_seconds",
			Help: "Full reads of presence into the leader's copy, before a claim: when it becomes leader, then once the catch-ups " +
				"brought as many users as the copy holds, and at least every minute.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}),
	}
	if reg != nil {
		var err error
		m.relayedRows = register(reg, m.relayedRows, &err)
		m.publishedMessages = register(reg, m.publishedMessages, &err)
		m.publishErrors = register(reg, m.publishErrors, &err)
		m.deadRows = register(reg, m.deadRows, &err)
		m.latency = register(reg, m.latency, &err)
		m.claims = register(reg, m.claims, &err)
		m.phases = register(reg, m.phases, &err)
		m.presenceLoads = register(reg, m.presenceLoads, &err)
		if err != nil {
			return m, err
		}
	}
	m.claimsRows = m.claims.WithLabelValues("rows")
	m.claimsEmpty = m.claims.WithLabelValues("none")
	m.claimed = m.phases.WithLabelValues("claim")
	m.routed = m.phases.WithLabelValues("route")
	m.published = m.phases.WithLabelValues("publish")
	m.marked = m.phases.WithLabelValues("mark")
	return m, nil
}

// register registers c, or returns the equal collector registered before (a second relay in the
// same process shares the counters).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		*errp = errors.Join(*errp, err)
	}
	return c
}
