//go:build faults

package faults

import (
	"fmt"
	"os"
	"testing"

	"github.com/socialnet/social/faults/testinfra"
)

// socialBin is the race-enabled `social` binary every test runs, built once.
var socialBin string

func TestMain(m *testing.M) {
	testinfra.Sweep() // servers of a run that was killed before its cleanups
	dir, err := testinfra.TempDir("social-faults-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	socialBin, err = testinfra.BuildSocial(dir)
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
