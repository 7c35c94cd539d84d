package main

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

// latencySummary is a latency distribution in milliseconds.
type latencySummary struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func summarize(ms []float64) latencySummary {
	if len(ms) == 0 {
		return latencySummary{}
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	return latencySummary{N: len(s), P50: quantile(s, .50), P90: quantile(s, .90), P99: quantile(s, .99), Max: s[len(s)-1]}
}

// quantile of sorted s (nearest rank).
func quantile(s []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// phaseResult is what one phase measured.
type phaseResult struct {
	Name        string         `json:"name"`
	TargetRate  float64        `json:"target_rate,omitempty"`
	Workers     int            `json:"workers,omitempty"`
	DurationS   float64        `json:"duration_s"`
	Sent        int            `json:"sent"`
	Accepted    int            `json:"accepted"`
	Failed      int            `json:"failed"`
	Statuses    map[string]int `json:"statuses"`
	Stalls      int            `json:"stalls,omitempty"`
	Sustainable *bool          `json:"sustainable,omitempty"`

	AcceptedPerSec float64        `json:"accepted_per_s"`
	HTTP           latencySummary `json:"http_post_create"`
	E2E            latencySummary `json:"end_to_end"`
	// The same frames split by author: the celebrity's posts (one message naming all its
	// connected followers) and everyone else's.
	E2ECelebrity latencySummary `json:"end_to_end_celebrity_posts"`
	E2EOthers    latencySummary `json:"end_to_end_other_posts"`
	// FirstSocket is, per post, the time to the first socket that received it.
	FirstSocket latencySummary `json:"first_socket"`

	Expected         int     `json:"frames_expected"`
	Frames           int     `json:"frames_received"`
	Missing          int     `json:"frames_missing"`
	Duplicates       int     `json:"frames_duplicate"`
	Unexpected       int     `json:"frames_unexpected"`
	Unknown          int     `json:"frames_unknown_post"`
	DeliveriesPerSec float64 `json:"deliveries_per_s"`

	Outbox lagStats   `json:"outbox"`
	Procs  []procStat `json:"processes"`

	http, e2e []sample // for the plot
	start     time.Time
}

func (ph *phase) result() phaseResult {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	r := phaseResult{Name: ph.name, TargetRate: ph.targetRate, Workers: ph.workers, DurationS: ph.dur.Seconds(),
		Sent: ph.sent, Accepted: len(ph.accepted), Statuses: ph.statuses, Stalls: ph.stalls,
		http: slices.Clone(ph.httpLat), start: ph.start}
	r.Failed = r.Sent - r.Accepted
	r.AcceptedPerSec = float64(r.Accepted) / ph.dur.Seconds()
	ms := make([]float64, len(ph.httpLat))
	for i, s := range ph.httpLat {
		ms[i] = s.ms
	}
	r.HTTP = summarize(ms)
	for _, p := range ph.accepted {
		r.Expected += int(p.expected)
	}
	return r
}

// analyzeFrames takes every frame the sockets received since the last analysis and attributes
// it to its post: duplicates are a socket receiving a post twice, unexpected frames are more
// distinct sockets than the post's connected follower tabs, missing frames the reverse.
func (l *load) analyzeFrames(ph *phase, r *phaseResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var e2e, celeb, others []float64
	var last int64
	first := map[*postRec]int64{}
	for _, s := range l.fleet.socks {
		frames, bad := s.take()
		r.Unknown += bad
		slices.SortFunc(frames, func(a, b frameRec) int { return bytes.Compare(a.post[:], b.post[:]) })
		for i, f := range frames {
			p := l.posts[f.post]
			if p == nil {
				r.Unknown++
				continue
			}
			if i > 0 && frames[i-1].post == f.post {
				if p.ph == ph {
					r.Duplicates++
				}
				continue
			}
			p.got++
			if p.ph != ph {
				continue // a straggler of an earlier phase, already reported missing there
			}
			r.Frames++
			ms := float64(f.at-p.sched) / 1e6
			e2e = append(e2e, ms)
			if p.celebrity {
				celeb = append(celeb, ms)
			} else {
				others = append(others, ms)
			}
			r.e2e = append(r.e2e, sample{at: p.sched, ms: ms})
			last = max(last, f.at)
			if t, ok := first[p]; !ok || f.at < t {
				first[p] = f.at
			}
			if p.first == 0 || f.at < p.first {
				p.first = f.at
			}
			p.last = max(p.last, f.at)
		}
	}
	ph.mu.Lock()
	for _, p := range ph.accepted {
		if d := int(p.expected - p.got); d > 0 {
			r.Missing += d
		} else {
			r.Unexpected -= d
		}
	}
	ph.mu.Unlock()
	firsts := make([]float64, 0, len(first))
	for p, at := range first {
		firsts = append(firsts, float64(at-p.sched)/1e6)
	}
	r.FirstSocket = summarize(firsts)
	r.E2E = summarize(e2e)
	r.E2ECelebrity, r.E2EOthers = summarize(celeb), summarize(others)
	if span := float64(last-ph.start.UnixNano()) / 1e9; span > 0 {
		r.DeliveriesPerSec = float64(r.Frames) / span
	}
}

func (r phaseResult) oneLine() string {
	return fmt.Sprintf("%-16s %7.1f posts/s accepted (%d failed)  http p50/p99 %.1f/%.1f ms  e2e p50/p99/max %.1f/%.1f/%.1f ms  %.0f deliveries/s  missing %d dup %d  outbox max pending %d age %.0f ms",
		r.Name, r.AcceptedPerSec, r.Failed, r.HTTP.P50, r.HTTP.P99, r.E2E.P50, r.E2E.P99, r.E2E.Max, r.DeliveriesPerSec,
		r.Missing, r.Duplicates, r.Outbox.MaxPending, r.Outbox.MaxAgeMs)
}

// seriesPoint is one second of the main phase, for the plot.
type seriesPoint struct {
	T       float64 `json:"t_s"`
	HTTPP50 float64 `json:"http_p50_ms"`
	HTTPP99 float64 `json:"http_p99_ms"`
	E2EP50  float64 `json:"e2e_p50_ms"`
	E2EP99  float64 `json:"e2e_p99_ms"`
}

// series buckets the phase's latencies per second of scheduled send time.
func (r phaseResult) series() []seriesPoint {
	bucket := func(ss []sample) map[int][]float64 {
		m := map[int][]float64{}
		for _, s := range ss {
			k := int((s.at - r.start.UnixNano()) / int64(time.Second))
			m[k] = append(m[k], s.ms)
		}
		return m
	}
	h, e := bucket(r.http), bucket(r.e2e)
	keys := map[int]bool{}
	for k := range h {
		keys[k] = true
	}
	for k := range e {
		keys[k] = true
	}
	var ks []int
	for k := range keys {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	var out []seriesPoint
	for _, k := range ks {
		hs, es := summarize(h[k]), summarize(e[k])
		out = append(out, seriesPoint{T: float64(k), HTTPP50: hs.P50, HTTPP99: hs.P99, E2EP50: es.P50, E2EP99: es.P99})
	}
	return out
}
