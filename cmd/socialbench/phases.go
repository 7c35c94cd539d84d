package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// relayPhases are the relay's social_outbox_batch_phase_seconds sums and counts, by phase, as the
// dispatcher's /metrics gives them at one moment.
type relayPhases map[string]phaseTotals

// phaseTotals is one phase's histogram: seconds observed and batches.
type phaseTotals struct{ sum, count float64 }

// phaseOrder is the order of a batch's phases.
var phaseOrder = []string{"claim", "route", "publish", "mark"}

// scrapeRelayPhases reads the phase histograms from a dispatcher; nil when it has none or is
// unreachable (the figure is then left out, never guessed).
func scrapeRelayPhases(ctx context.Context, dispatcherURL string) relayPhases {
	if dispatcherURL == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, dispatcherURL+"/metrics", nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	out := relayPhases{}
	for _, m := range fams["social_outbox_batch_phase_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "phase" {
				h := m.GetHistogram()
				out[l.GetValue()] = phaseTotals{h.GetSampleSum(), float64(h.GetSampleCount())}
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// meansSince returns each phase's mean duration in ms over the batches since before.
func (after relayPhases) meansSince(before relayPhases) map[string]float64 {
	if after == nil || before == nil {
		return nil
	}
	out := map[string]float64{}
	for _, name := range phaseOrder {
		if n := after[name].count - before[name].count; n > 0 {
			out[name] = (after[name].sum - before[name].sum) / n * 1000
		}
	}
	return out
}

// phaseLine prints phase means in batch order: "claim 1.2, route 0.7, publish 1.1, mark 0.4 ms".
func phaseLine(means map[string]float64) string {
	var parts []string
	for _, name := range phaseOrder {
		if v, ok := means[name]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2f", name, v))
		}
	}
	return strings.Join(parts, ", ") + " ms"
}
