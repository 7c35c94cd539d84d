package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// latencySVG draws the main phase's latency per second of scheduled send time: end-to-end and
// POST /post/create, p50 and p99, on a log scale (so a 1 ms median and a 300 ms tail both show).
func latencySVG(r *e2eReport) string {
	const W, H, left, right, top, bottom = 820, 420, 70, 190, 40, 50
	pw, ph := float64(W-left-right), float64(H-top-bottom)
	pts := r.Series
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	title := "socialbench e2e: latency per second of the load phase"
	if r.Main != nil {
		title = fmt.Sprintf("socialbench e2e: %.0f posts/s, %d sockets — latency per second", r.Main.TargetRate, r.Connections.Sockets)
	}
	p(`<text x="%d" y="22" font-size="14">%s</text>`+"\n", left, html.EscapeString(title))
	if len(pts) == 0 {
		p("<text x=\"%d\" y=\"%d\">no data</text></svg>\n", left, H/2)
		return b.String()
	}
	lo, hi := math.Inf(1), 1.0
	for _, s := range pts {
		for _, v := range []float64{s.HTTPP50, s.HTTPP99, s.E2EP50, s.E2EP99} {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	lo = math.Pow(10, math.Floor(math.Log10(max(lo, 0.01))))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	tmax := max(pts[len(pts)-1].T+1, 1)
	x := func(t float64) float64 { return float64(left) + pw*t/tmax }
	y := func(v float64) float64 {
		return float64(top) + ph*(1-(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo)))
	}
	// Axes and grid.
	p(`<g stroke="#ccc">`)
	for d := lo; d <= hi*1.0001; d *= 10 {
		p(`<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, y(d), float64(left)+pw, y(d))
	}
	p("</g>\n")
	for d := lo; d <= hi*1.0001; d *= 10 {
		p(`<text x="%d" y="%.1f" text-anchor="end">%s ms</text>`+"\n", left-6, y(d)+4, trimFloat(d))
	}
	step := math.Max(1, math.Ceil(tmax/10))
	for t := 0.0; t <= tmax; t += step {
		p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(t), H-bottom+18, trimFloat(t))
	}
	p(`<text x="%.1f" y="%d" text-anchor="middle">seconds into the load phase (scheduled send time)</text>`+"\n", float64(left)+pw/2, H-12)
	p(`<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)

	series := []struct {
		name, color, dash string
		v                 func(seriesPoint) float64
	}{
		{"e2e p99", "#d62728", "", func(s seriesPoint) float64 { return s.E2EP99 }},
		{"e2e p50", "#d62728", "5,4", func(s seriesPoint) float64 { return s.E2EP50 }},
		{"http p99", "#1f77b4", "", func(s seriesPoint) float64 { return s.HTTPP99 }},
		{"http p50", "#1f77b4", "5,4", func(s seriesPoint) float64 { return s.HTTPP50 }},
	}
	for i, s := range series {
		var path []string
		for _, pt := range pts {
			if v := s.v(pt); v > 0 {
				path = append(path, fmt.Sprintf("%.1f,%.1f", x(pt.T+0.5), y(v)))
			}
		}
		p(`<polyline fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s" points="%s"/>`+"\n", s.color, s.dash, strings.Join(path, " "))
		ly := top + 20 + 22*i
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`, W-right+15, ly, W-right+45, ly, s.color, s.dash)
		p(`<text x="%d" y="%d">%s</text>`+"\n", W-right+52, ly+4, s.name)
	}
	if m := r.Main; m != nil {
		lines := []string{
			fmt.Sprintf("accepted %.0f posts/s", m.AcceptedPerSec),
			fmt.Sprintf("e2e p99 %.1f ms", m.E2E.P99),
			fmt.Sprintf("http p99 %.1f ms", m.HTTP.P99),
			fmt.Sprintf("%.0f deliveries/s", m.DeliveriesPerSec),
			fmt.Sprintf("missing %d, dup %d", m.Missing, m.Duplicates),
		}
		for i, l := range lines {
			p(`<text x="%d" y="%d" fill="#333">%s</text>`+"\n", W-right+15, top+130+18*i, html.EscapeString(l))
		}
	}
	p("</svg>\n")
	return b.String()
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}
