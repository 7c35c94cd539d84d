package outbox

// WithPlanCacheMode makes the relay's leader session plan with mode ("force_custom_plan",
// "force_generic_plan").
func WithPlanCacheMode(cfg Config, mode string) Config {
	cfg.planCacheMode = mode
	return cfg
}
