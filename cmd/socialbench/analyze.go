package main

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/socialnet/social/cmd/socialbench/internal/bench"
)

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

	AcceptedPerSec float64       `json:"accepted_per_s"`
	HTTP           bench.Summary `json:"http_post_create"`
	E2E            bench.Summary `json:"end_to_end"`
	// The same frames split by author: the celebrity's posts (one message naming all its
	// connected followers) and everyone else's.
	E2ECelebrity bench.Summary `json:"end_to_end_celebrity_posts"`
	E2EOthers    bench.Summary `json:"end_to_end_other_posts"`
	// FirstSocket is, per post, the time to the first socket that received it.
	FirstSocket bench.Summary `json:"first_socket"`

	Expected         int     `json:"frames_expected"`
	Frames           int     `json:"frames_received"`
	Missing          int     `json:"frames_missing"`
	Duplicates       int     `json:"frames_duplicate"`
	Unexpected       int     `json:"frames_unexpected"`
	Unknown          int     `json:"frames_unknown_post"`
	DeliveriesPerSec float64 `json:"deliveries_per_s"`

	Outbox lagStats `json:"outbox"`
	// Procs are the system's processes over the phase, MachineBusyPct the whole machine's busy
	// share (others' work on a shared machine shows here).
	Procs          []bench.ProcStat `json:"processes,omitempty"`
	MachineBusyPct float64          `json:"machine_busy_pct,omitempty"`
}

func (ph *phase) result() phaseResult {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	r := phaseResult{Name: ph.name, TargetRate: ph.targetRate, Workers: ph.workers, DurationS: ph.dur.Seconds(),
		Sent: ph.sent, Accepted: len(ph.accepted), Statuses: ph.statuses, Stalls: ph.stalls}
	r.Failed = r.Sent - r.Accepted
	r.AcceptedPerSec = float64(r.Accepted) / ph.dur.Seconds()
	r.HTTP = bench.Summarize(ph.httpMs)
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
				// A straggler of an earlier phase, already reported missing there, or, past what
				// the post is owed, a frame sent again (a duplicate found only now).
				if p.got > p.expected {
					r.Duplicates++
				}
				continue
			}
			r.Frames++
			ms := float64(f.at-p.sched) / 1e6
			e2e = append(e2e, ms)
			if p.celebrity {
				celeb = append(celeb, ms)
			} else {
				others = append(others, ms)
			}
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
	r.FirstSocket = bench.Summarize(firsts)
	r.E2E = bench.Summarize(e2e)
	r.E2ECelebrity, r.E2EOthers = bench.Summarize(celeb), bench.Summarize(others)
	if span := float64(last-ph.start.UnixNano()) / 1e9; span > 0 {
		r.DeliveriesPerSec = float64(r.Frames) / span
	}
}

func (r phaseResult) oneLine() string {
	return fmt.Sprintf("%-16s %7.1f posts/s accepted (%d failed)  http p50/p99 %.1f/%.1f ms  e2e p50/p99/max %.1f/%.1f/%.1f ms  %.0f deliveries/s  missing %d dup %d  outbox max pending %d age %.0f ms",
		r.Name, r.AcceptedPerSec, r.Failed, r.HTTP.P50, r.HTTP.P99, r.E2E.P50, r.E2E.P99, r.E2E.Max, r.DeliveriesPerSec,
		r.Missing, r.Duplicates, r.Outbox.MaxPending, r.Outbox.MaxAgeMs)
}
