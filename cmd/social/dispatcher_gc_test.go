package main

import (
	"runtime/debug"
	"testing"
)

func TestDispatcherRelaxesGCUnlessGOGCIsSet(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)

	relaxDispatcherGC(map[string]string{})
	if got := debug.SetGCPercent(100); got != dispatcherGCPercent {
		t.Errorf("without GOGC: GC percent %d, want %d", got, dispatcherGCPercent)
	}
	relaxDispatcherGC(map[string]string{"GOGC": "100"})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC=100: GC percent %d, want 100 (the operator's)", got)
	}
}
