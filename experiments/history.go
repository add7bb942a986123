package experiments

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"sync"
	"time"
)

// History is what the probes of one run have observed, for the history
// functions of expressions (failureRatio, consecutiveFailures, percentile)
// and for error-budget accounting. It is append-only: the engine adds every
// observation as it arrives, in time order per probe, and History forgets
// observations older than the longest window any expression uses (Keep).
// Consecutive failures are counted without that bound.
//
// A History is safe for concurrent use.
type History struct {
	keep time.Duration

	mu     sync.Mutex
	probes map[string]*probeHistory
}

type probeHistory struct {
	// samples are in the order added; head is the first still kept.
	samples []Sample
	head    int
	// consecutive counts the failures since the last observation that was
	// not one.
	consecutive int
	// seen counts every observation added, kept or not.
	seen int
}

// Sample is one observation at the time it was made.
type Sample struct {
	At  time.Time
	Obs Observation
}

// NewHistory returns an empty history that keeps observations for keep.
// Experiment.NewHistory sizes it from the file's expressions.
func NewHistory(keep time.Duration) *History {
	return &History{keep: keep, probes: map[string]*probeHistory{}}
}

// NewHistory returns an empty history that keeps what the experiment's
// expressions need: observations as old as the longest window they use.
func (e *Experiment) NewHistory() *History { return NewHistory(e.HistoryWindow()) }

// HistoryWindow is the longest window any steady-state or abortWhen
// expression reads; zero when none reads history.
func (e *Experiment) HistoryWindow() time.Duration {
	var w time.Duration
	for _, list := range [][]*Expression{e.Spec.SteadyState, e.Spec.Budget.AbortWhen} {
		for _, x := range list {
			if x != nil && x.window > w {
				w = x.window
			}
		}
	}
	return w
}

// Keep is how long observations are kept.
func (h *History) Keep() time.Duration { return h.keep }

// Add records that probe observed o at time at.
func (h *History) Add(probe string, at time.Time, o Observation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ph := h.probes[probe]
	if ph == nil {
		ph = &probeHistory{}
		h.probes[probe] = ph
	}
	ph.seen++
	if Failed(o) {
		ph.consecutive++
	} else {
		ph.consecutive = 0
	}
	if h.keep <= 0 {
		return
	}
	ph.samples = append(ph.samples, Sample{At: at, Obs: o})
	cutoff := at.Add(-h.keep)
	for ph.head < len(ph.samples) && ph.samples[ph.head].At.Before(cutoff) {
		ph.samples[ph.head] = Sample{}
		ph.head++
	}
	// Compact once the forgotten part is the larger one, so that memory
	// stays proportional to what is kept.
	if ph.head > 64 && ph.head > len(ph.samples)/2 {
		n := copy(ph.samples, ph.samples[ph.head:])
		clear(ph.samples[n:])
		ph.samples = ph.samples[:n]
		ph.head = 0
	}
}

// Window returns the observations of probe made in (now-window, now], oldest
// first. The slice is a copy.
func (h *History) Window(probe string, window time.Duration, now time.Time) []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	ph := h.probes[probe]
	if ph == nil {
		return nil
	}
	from := now.Add(-window)
	kept := ph.samples[ph.head:]
	i := sort.Search(len(kept), func(i int) bool { return kept[i].At.After(from) })
	var out []Sample
	for _, s := range kept[i:] {
		if s.At.After(now) {
			break
		}
		out = append(out, s)
	}
	return out
}

// FailureRatio is the share of probe's observations in (now-window, now]
// that count as failures (Failed). With no observation in the window it
// returns ErrNoHistory: a ratio of nothing is not zero.
func (h *History) FailureRatio(probe string, window time.Duration, now time.Time) (float64, error) {
	samples := h.Window(probe, window, now)
	if len(samples) == 0 {
		return 0, fmt.Errorf("%w: %s has no observation in the last %s", ErrNoHistory, probe, window)
	}
	failed := 0
	for _, s := range samples {
		if Failed(s.Obs) {
			failed++
		}
	}
	return float64(failed) / float64(len(samples)), nil
}

// ConsecutiveFailures is how many of probe's latest observations in a row
// count as failures; 0 when the latest did not, or there is none.
func (h *History) ConsecutiveFailures(probe string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ph := h.probes[probe]; ph != nil {
		return ph.consecutive
	}
	return 0
}

// Seen is how many observations of probe were added, forgotten ones
// included: a count that changes exactly when the probe observed again.
func (h *History) Seen(probe string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ph := h.probes[probe]; ph != nil {
		return ph.seen
	}
	return 0
}

// Percentile is the p-th percentile (nearest rank, 0 < p <= 100) of field of
// probe's observations in (now-window, now], where field is the name an
// expression reads (latency, status, value). An observation that could not
// be made counts with the time it was waited for (its latency or duration,
// at least the timeout: see WithWaited), since a service that stopped
// answering is slow, not absent; its other fields, and the value of an
// empty Prometheus result, are not there and are left out (FieldMissing).
// A duration field's percentile is returned as nanoseconds. With no value
// in the window it returns ErrNoHistory.
func (h *History) Percentile(probe, field string, p float64, window time.Duration, now time.Time) (float64, error) {
	samples := h.Window(probe, window, now)
	values := make([]float64, 0, len(samples))
	for _, s := range samples {
		if _, missing := FieldMissing(s.Obs, field); missing {
			continue
		}
		if v, ok := numericField(s.Obs, field); ok {
			values = append(values, v)
		}
	}
	if len(values) == 0 {
		return 0, fmt.Errorf("%w: %s has no %s in the last %s", ErrNoHistory, probe, field, window)
	}
	if p <= 0 || p > 100 || math.IsNaN(p) {
		return 0, fmt.Errorf("percentile %v is not in (0, 100]", p)
	}
	sort.Float64s(values)
	rank := int(math.Ceil(p / 100 * float64(len(values))))
	rank = max(1, min(rank, len(values)))
	return values[rank-1], nil
}

// numericField reads the field an expression calls name from an
// observation, as a number.
func numericField(o Observation, name string) (float64, bool) {
	v := reflect.ValueOf(o)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return 0, false
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return 0, false
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if exprName(t.Field(i)) != name {
			continue
		}
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return float64(f.Int()), true
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return float64(f.Uint()), true
		case reflect.Float32, reflect.Float64:
			return f.Float(), true
		}
		return 0, false
	}
	return 0, false
}

// exprName is the name expr gives a struct field: its `expr` tag, or the
// Go name.
func exprName(f reflect.StructField) string {
	if tag := f.Tag.Get("expr"); tag != "" && tag != "-" {
		return tag
	}
	return f.Name
}
