package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's settings table names every variable Config reads, once, with the default the
// binary uses (defaultConfig): the first `code` of its default cell, or – for none.
func TestREADMESettingsTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no ## Configuration section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([A-Z0-9_]+)` \\| ([^|]*) \\|")
	code := regexp.MustCompile("`([^`]*)`")
	want := envDefaults()
	seen := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		name, cell := m[1], strings.TrimSpace(m[2])
		if seen[name] {
			t.Errorf("README: %s is in the table twice", name)
		}
		seen[name] = true
		def, ok := want[name]
		if !ok {
			t.Errorf("README: %s is not a setting of the binary", name)
			continue
		}
		got := ""
		if c := code.FindStringSubmatch(cell); c != nil {
			got = c[1]
		} else if cell != "–" {
			t.Errorf("README: %s's default %q is neither `value` nor –", name, cell)
		}
		if got != def {
			t.Errorf("README: %s defaults to %q, the binary to %q", name, got, def)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("README: the settings table lacks %s", name)
		}
		if envDocs[name] == "" {
			t.Errorf("help: envDocs lacks %s", name)
		}
	}
}
