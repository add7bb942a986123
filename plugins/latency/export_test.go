package latency

// SleepPrecise is sleepPrecise, for the release-wait benchmark.
var SleepPrecise = sleepPrecise
