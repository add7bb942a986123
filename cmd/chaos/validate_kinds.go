package main

import (
	"errors"
	"os"

	"github.com/chaos-run/chaos/experiments"
)

// validateList checks path when it is a schedule or a game day (ok), and
// returns its result followed by one (empty) result per experiment file it
// names, which the caller checks as experiments. A file of another kind,
// or one that cannot be read, is not ok: the experiment loader says what
// is wrong with it.
func validateList(path string) ([]fileResult, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var (
		named []string
		lerr  error
	)
	switch experiments.KindOf(data) {
	case experiments.KindSchedule:
		var s *experiments.Schedule
		if s, lerr = experiments.ParseSchedule(path, data); lerr == nil {
			for _, e := range s.Spec.Entries {
				for _, pat := range e.Experiments {
					files, _ := experiments.ExpandExperiments(path, pat)
					named = append(named, files...)
				}
			}
		}
	case experiments.KindGameDay:
		var g *experiments.GameDay
		if g, lerr = experiments.ParseGameDay(path, data); lerr == nil {
			for _, st := range g.Spec.Steps {
				if st.Experiment != "" {
					files, _ := experiments.ExpandExperiments(path, st.Experiment)
					named = append(named, files...)
				}
			}
		}
	default:
		return nil, false
	}
	r := fileResult{file: path}
	var fe *experiments.FileError
	switch {
	case errors.As(lerr, &fe):
		r.problems = fe.Problems
	case lerr != nil:
		r.problems = []experiments.Problem{{Message: lerr.Error()}}
	}
	out := []fileResult{r}
	seen := map[string]bool{}
	for _, f := range named {
		if !seen[f] {
			seen[f] = true
			out = append(out, fileResult{file: f})
		}
	}
	return out, true
}
