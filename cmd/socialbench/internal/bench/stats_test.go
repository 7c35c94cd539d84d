package bench

import "testing"

func TestSummarizeIsNearestRank(t *testing.T) {
	ms := make([]float64, 100)
	for i := range ms {
		ms[i] = float64(100 - i) // 100..1, unsorted
	}
	s := Summarize(ms)
	if s.N != 100 || s.P50 != 50 || s.P90 != 90 || s.P99 != 99 || s.Max != 100 {
		t.Errorf("Summarize(1..100) = %+v", s)
	}
	if ms[0] != 100 {
		t.Error("Summarize sorted its argument")
	}
	if s := Summarize([]float64{7}); s.P50 != 7 || s.P99 != 7 {
		t.Errorf("one sample: %+v", s)
	}
}

func TestSpread(t *testing.T) {
	for _, c := range []struct {
		vals []float64
		want string
	}{
		{nil, "–"},
		{[]float64{3}, "3.0"},
		{[]float64{4, 1, 2}, "2.0 (1.0–4.0)"},
		{[]float64{4, 1, 2, 3}, "2.5 (1.0–4.0)"},
	} {
		if got := Spread(c.vals, "%.1f"); got != c.want {
			t.Errorf("Spread(%v) = %q, want %q", c.vals, got, c.want)
		}
	}
}
