package scheduler

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chaos-run/chaos/reports"
)

// Metrics are the scheduler's Prometheus metrics, registered on the
// registry the caller passes (never the global one). A nil *Metrics keeps
// nothing.
type Metrics struct {
	runs         *prometheus.CounterVec
	skips        *prometheus.CounterVec
	timeToSafety *prometheus.HistogramVec
	budgetSpent  *prometheus.CounterVec
	nextRunAt    *prometheus.GaugeVec
	caughtUps    *prometheus.CounterVec
}

// NewMetrics registers the scheduler's metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_schedule_runs_total", Help: "Runs the scheduler started, by entry and verdict.",
		}, []string{"entry", "verdict"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_schedule_skipped_total", Help: "Fires that did not run, by entry and reason (window, freeze, freeze-unknown, concurrency, missed, incident, alertmanager-unknown, stopping, claimed, lease-lost).",
		}, []string{"entry", "reason"}),
		timeToSafety: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chaos_schedule_time_to_safety_seconds", Help: "For runs the budget aborted: from the breach to every fault reverted.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"entry"}),
		budgetSpent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_schedule_error_budget_spent_seconds_total", Help: "SLO error budget the runs spent, by entry.",
		}, []string{"entry"}),
		nextRunAt: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chaos_schedule_next_run_timestamp_seconds", Help: "When each entry fires next (Unix time); 0 when it never does again.",
		}, []string{"entry"}),
		caughtUps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_schedule_caught_up_total", Help: "Fires that fell due while no scheduler decided them (stopped, restarting, no leader) and ran late when one began, by entry.",
		}, []string{"entry"}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.skips, m.timeToSafety, m.budgetSpent, m.nextRunAt, m.caughtUps} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) ran(entry string, rec *reports.Record) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(entry, string(rec.Verdict)).Inc()
	if rec.TimeToSafety != nil {
		m.timeToSafety.WithLabelValues(entry).Observe(rec.TimeToSafety.Seconds())
	}
	if rec.ErrorBudget != nil {
		m.budgetSpent.WithLabelValues(entry).Add(rec.ErrorBudget.Spent.Seconds())
	}
}

func (m *Metrics) skipped(entry string, reason SkipReason) {
	if m == nil {
		return
	}
	m.skips.WithLabelValues(entry, string(reason)).Inc()
}

func (m *Metrics) skippedN(entry string, reason SkipReason, n int) {
	if m == nil {
		return
	}
	m.skips.WithLabelValues(entry, string(reason)).Add(float64(n))
}

func (m *Metrics) caughtUp(entry string) {
	if m == nil {
		return
	}
	m.caughtUps.WithLabelValues(entry).Inc()
}

// nextRun sets when entry fires next.
func (m *Metrics) nextRun(entry string, at time.Time) {
	if m == nil {
		return
	}
	v := 0.0
	if !at.IsZero() {
		v = float64(at.UnixNano()) / 1e9
	}
	m.nextRunAt.WithLabelValues(entry).Set(v)
}
