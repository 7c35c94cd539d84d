package outbox

// BrokerStatus is the broker part of `social outbox status`: what the command itself learned by
// connecting to AMQP_URL with a short timeout, and the message shape a dispatcher with the same
// configuration chooses for that broker. It is not read from a running dispatcher: a dispatcher
// chooses once, at its first connection, and may have reached another node of a cluster
// (its start-up log line says which).
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
	// FollowersPerMessage is the routing key + CC keys of one relayed message, as a dispatcher
	// with this configuration chooses for this broker; 0 when that depends on a version this
	// command could not read.
	FollowersPerMessage int `json:"followers_per_message"`
	// FollowersPerMessageSource is "automatic" (by broker version) or "RELAY_FOLLOWERS_PER_MESSAGE".
	FollowersPerMessageSource string `json:"followers_per_message_source"`
	// Shape says why, in a few words; Warning is what the dispatcher logs at WARN for this broker.
	Shape   string `json:"shape,omitempty"`
	Warning string `json:"warning,omitempty"`
}
