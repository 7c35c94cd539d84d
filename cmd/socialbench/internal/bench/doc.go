// Package bench is what every socialbench subcommand shares: the services it runs against, the
// system under test started as the binary runs in production (system.go), /proc readings of
// processes and of the machine (proc.go, sampler.go), and latency summaries (stats.go).
package bench

import "flag"

// DefaultAMQPURL is the tests' RabbitMQ 4 node (scripts/rabbitmq4, `make test-broker`), which
// docs/performance.md measures against.
const DefaultAMQPURL = "amqp://guest:guest@127.0.0.1:5673/"

// DefaultAdminURL is PostgreSQL's maintenance database: benchmarks create their own databases
// there and drop them.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Services are the broker and the database server a benchmark runs against.
type Services struct {
	AMQPURL  string
	AdminURL string
}

// Flags registers --amqp-url and --admin-url.
func (s *Services) Flags(fs *flag.FlagSet) {
	fs.StringVar(&s.AMQPURL, "amqp-url", DefaultAMQPURL, "RabbitMQ (on this machine where the broker's CPU is read)")
	fs.StringVar(&s.AdminURL, "admin-url", DefaultAdminURL, "PostgreSQL maintenance database (benchmarks create their databases there and drop them)")
}
