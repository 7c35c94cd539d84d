// Package faults holds the scale-out and fault tests (build tag "faults", `make test-faults`):
// they start private RabbitMQ nodes and PostgreSQL servers (package testinfra), run the real
// `social` binary against them, break them on purpose, and check that nothing posted is lost.
package faults
