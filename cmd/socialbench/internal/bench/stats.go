package bench

import (
	"fmt"
	"math"
	"slices"
)

// Summary is a latency distribution in milliseconds.
type Summary struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Summarize returns the distribution of ms (nearest-rank percentiles); ms is not changed.
func Summarize(ms []float64) Summary {
	if len(ms) == 0 {
		return Summary{}
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	q := func(q float64) float64 { return s[max(0, min(int(math.Ceil(q*float64(len(s))))-1, len(s)-1))] }
	return Summary{N: len(s), P50: q(.50), P90: q(.90), P99: q(.99), Max: s[len(s)-1]}
}

// Median of vals (the mean of the middle two for an even count); 0 for none.
func Median(vals []float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// Spread formats runs' values as "median (min–max)" with the verb f ("%.1f"), the median alone
// for one run and "–" for none: how docs/performance.md reports every figure.
func Spread(vals []float64, f string) string {
	switch len(vals) {
	case 0:
		return "–"
	case 1:
		return fmt.Sprintf(f, vals[0])
	}
	return fmt.Sprintf(f+" ("+f+"–"+f+")", Median(vals), slices.Min(vals), slices.Max(vals))
}
