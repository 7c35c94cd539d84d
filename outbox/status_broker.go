package outbox

// BrokerStatus is the broker part of `social outbox status`: what the command itself learned by
// connecting to AMQP_URL with a short timeout. It is not read from a running dispatcher, which may
// have reached another node of a cluster (its start-up log line says which).
type BrokerStatus struct {
	// Reachable is false when no broker of AMQP_URL answered within the timeout.
	Reachable bool `json:"reachable"`
	// Address is the broker that answered (or the first configured), password redacted.
	Address string `json:"address,omitempty"`
	// Product and Version are the broker's server properties ("RabbitMQ", "3.10.8"); "" when
	// unreachable or not announced.
	Product string `json:"product,omitempty"`
	Version string `json:"version"`
	// Error says why the broker was unreachable (addresses redacted).
	Error string `json:"error,omitempty"`
}
