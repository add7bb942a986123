package latency

// SleepPrecise and SleepUntil are sleepPrecise and sleepUntil, for the
// release-wait benchmark.
var (
	SleepPrecise = sleepPrecise
	SleepUntil   = sleepUntil
)
