package websocket

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connections prometheus.Gauge
	framesSent  prometheus.Counter
	writes      prometheus.Counter
	slow        prometheus.Counter
	refused     prometheus.Counter
	capped      *prometheus.CounterVec
	latency     prometheus.Histogram
	resyncs     prometheus.Counter
	refills     prometheus.Counter
	gaps        prometheus.Counter
	throttled   prometheus.Counter
	waiting     prometheus.Gauge
	turnTimeout prometheus.Counter
	shed        prometheus.Counter
	shedResyncs prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "social_ws_connections", Help: "Open feed websockets on this instance.",
		}),
		framesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_ws_frames_sent_total", Help: "Feed frames written to websockets (live and resumed).",
		}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_ws_writes_total", Help: "write(2) calls on feed websockets (frames sent ÷ writes = frames per syscall).",
		}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_ws_slow_client_disconnects_total", Help: "Websockets closed because their send queue exceeded its byte bound.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_ws_too_many_sockets_total", Help: "Websocket handshakes refused with 429: the user held the most sockets allowed on this instance.",
		}),
		capped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "social_ws_capped_total", Help: "Websocket handshakes refused by a bound: cap=\"address\" (429, MaxSocketsPerAddress) or cap=\"instance\" (503, MaxSockets).",
		}, []string{"cap"}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_ws_resyncs_total", Help: "Resumes ended with a resync frame (more missed than one resume sends, or since above the newest position).",
		}),
		refills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_ws_refills_total", Help: "Open websockets whose gap was filled from the outbox one by one (a lost registration, a long broker outage).",
		}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_ws_gap_fills_total", Help: "Broker reconnects whose gap was read from the outbox once for the whole instance.",
		}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_ws_handshakes_throttled_total", Help: "Websocket handshakes refused with 429: the user made more than HandshakesPerUser a minute.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "social_ws_resumes_waiting", Help: "Resumes (and refills) waiting for their user's turn: one resume at a time per user.",
		}),
		turnTimeout: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_ws_resume_turn_timeouts_total", Help: "Resumes that waited ResumeWait for their user's turn in vain (429, or 1013 for a refill).",
		}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_ws_dialog_frames_shed_total", Help: "Dialog frames dropped because a socket's dialog frames passed DialogQueueBytes (the client is sent a resync for them).",
		}),
		shedResyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "social_ws_dialog_resyncs_total", Help: "Resync frames with kinds [dialog] sent on open sockets: reload dialogs through REST.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "social_ws_delivery_latency_seconds",
			Help:    "Live frames: from the post event's created_at to the frame written to the socket.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.framesSent, m.writes, m.slow, m.refused, m.capped, m.latency, m.resyncs, m.refills, m.gaps,
			m.throttled, m.waiting, m.turnTimeout, m.shed, m.shedResyncs)
	}
	return m
}
