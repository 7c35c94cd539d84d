// Package setting fills the unset fields of a package's Config: a zero (or negative) count,
// size or duration means "the package's default", so a Config literal names only what it changes.
package setting

import "time"

// Default sets *v to d unless *v is positive.
func Default[T int | int64 | float64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}
