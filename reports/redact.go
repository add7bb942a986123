package reports

// Redact passes every text of the record through f (which replaces
// secrets), so that no secret from the experiment file reaches a report.
// The engine calls it before it hands the record out.
func (r *Record) Redact(f func(string) string) {
	r.Experiment.Name = f(r.Experiment.Name)
	r.Experiment.File = f(r.Experiment.File)
	r.Experiment.Hypothesis = f(r.Experiment.Hypothesis)
	r.Experiment.Owner.Webhook = f(r.Experiment.Owner.Webhook)
	r.Reason = f(r.Reason)
	for i := range r.Leftovers {
		r.Leftovers[i] = f(r.Leftovers[i])
	}
	for i := range r.Faults {
		fl := &r.Faults[i]
		fl.Error = f(fl.Error)
		fl.Detail = f(fl.Detail)
		for k, v := range fl.Params {
			fl.Params[k] = f(v)
		}
	}
	for i := range r.SteadyState {
		r.SteadyState[i].Expression = f(r.SteadyState[i].Expression)
		r.SteadyState[i].Detail = f(r.SteadyState[i].Detail)
	}
	for i := range r.Budget {
		r.Budget[i].Expression = f(r.Budget[i].Expression)
		r.Budget[i].Detail = f(r.Budget[i].Detail)
	}
	for i := range r.Timeline {
		e := &r.Timeline[i]
		e.Message = f(e.Message)
		e.Values = redactValues(e.Values, f)
	}
}

func redactValues(v map[string]any, f func(string) string) map[string]any {
	for k, x := range v {
		v[k] = redactValue(x, f)
	}
	return v
}

func redactValue(x any, f func(string) string) any {
	switch t := x.(type) {
	case string:
		return f(t)
	case map[string]any:
		return redactValues(t, f)
	case []any:
		for i := range t {
			t[i] = redactValue(t[i], f)
		}
		return t
	case []string:
		for i := range t {
			t[i] = f(t[i])
		}
		return t
	}
	return x
}
