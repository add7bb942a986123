package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/plugins/sdk"
)

// ValidateFaults asks each fault's plugin, over the plugin protocol, whether
// it can act on the fault's target and accepts its `with` parameters, so
// that a third-party plugin's parameters are checked as strictly as a
// built-in one's, before anything runs. exp must be one Load accepted.
//
// Each plugin is opened once, described, asked to validate every fault that
// names it, and closed before ValidateFaults returns. Every problem is
// positioned in the file: a parameter problem at its key under `with`, a
// missing parameter at `with` itself, a target the plugin cannot act on at
// the fault's `target`; the hint lists the plugin's parameters or, for a
// known one, describes it from the plugin's parameter schema. Messages are
// redacted with the experiment's secrets.
//
// The error is for a plugin that could not be started or did not answer:
// that is the environment's fault, not the file's.
func ValidateFaults(ctx context.Context, exp *experiments.Experiment, plugins Plugins) ([]experiments.Problem, error) {
	var order []string
	byPlugin := map[string][]int{}
	for i, f := range exp.Spec.Faults {
		if f == nil {
			continue
		}
		if _, ok := byPlugin[f.Plugin]; !ok {
			order = append(order, f.Plugin)
		}
		byPlugin[f.Plugin] = append(byPlugin[f.Plugin], i)
	}
	var probs []experiments.Problem
	for _, name := range order {
		p, err := validateFaultsOf(ctx, exp, plugins, name, byPlugin[name])
		if err != nil {
			return nil, err
		}
		probs = append(probs, p...)
	}
	for i := range probs {
		probs[i].Message = experiments.Redact(probs[i].Message, exp.Secrets())
		probs[i].Hint = experiments.Redact(probs[i].Hint, exp.Secrets())
	}
	experiments.SortProblems(probs)
	return probs, nil
}

// validateFaultsOf checks the faults at indexes with the one plugin they name.
func validateFaultsOf(ctx context.Context, exp *experiments.Experiment, plugins Plugins, name string, indexes []int) ([]experiments.Problem, error) {
	pl, err := plugins.Open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("start plugin %s: %w", name, err)
	}
	defer pl.Close()
	desc, err := pl.Describe(ctx)
	if err != nil {
		return nil, fmt.Errorf("describe plugin %s: %w", name, err)
	}
	return checkFaults(ctx, exp, pl, desc, indexes)
}

// checkFaults has an open plugin check the faults at indexes: their target
// kind, then their parameters. Both ValidateFaults and a run use it.
func checkFaults(ctx context.Context, exp *experiments.Experiment, pl FaultPlugin, desc sdk.Description, indexes []int) ([]experiments.Problem, error) {
	name := desc.Name
	params := pluginParamDocs(desc.ParamsSchema)
	var probs []experiments.Problem
	for _, i := range indexes {
		f := exp.Spec.Faults[i]
		path := fmt.Sprintf("spec.faults[%d]", i)
		t := exp.Spec.Targets[f.Target]
		if t == nil {
			continue // Load has said so already
		}
		kind := t.Kind()
		if len(desc.TargetKinds) > 0 && !slices.Contains(desc.TargetKinds, kind) {
			probs = append(probs, experiments.Problem{
				Pos: exp.PosOf(path + ".target"), Path: path + ".target",
				Message: fmt.Sprintf("plugin %s cannot act on %s, a %s target", name, f.Target, kind),
				Hint:    fmt.Sprintf("%s acts on %s targets", name, strings.Join(desc.TargetKinds, ", ")),
			})
			continue
		}
		raw := []byte("{}")
		if f.With != nil {
			var err error
			// A plugin request: the one place a secret parameter is revealed.
			if raw, err = json.Marshal(experiments.RevealParams(f.With)); err != nil {
				probs = append(probs, experiments.Problem{Pos: exp.PosOf(path + ".with"), Path: path + ".with", Message: "parameters cannot be encoded: " + err.Error()})
				continue
			}
		}
		req := sdk.Request{Target: pluginTarget(f.Target, t), Params: raw}
		pps, err := pl.Validate(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("validate fault %d with plugin %s: %w", i, name, err)
		}
		for _, pp := range pps {
			probs = append(probs, positionParamProblem(exp, path, name, f, pp, params))
		}
	}
	return probs, nil
}

// positionParamProblem positions one of the plugin's problems in the file.
func positionParamProblem(exp *experiments.Experiment, path, plugin string, f *experiments.Fault, pp sdk.ParamProblem, params map[string]string) experiments.Problem {
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	list := ""
	if len(names) > 0 {
		list = fmt.Sprintf("parameters of %s: %s", plugin, strings.Join(names, ", "))
	}
	param := strings.TrimPrefix(pp.Param, "with.")
	_, inWith := f.With[param]
	switch {
	case param == "target" && !inWith:
		// A plugin's word about the target, not a parameter.
		return experiments.Problem{Pos: exp.PosOf(path + ".target"), Path: path + ".target", Message: pp.Message}
	case param == "" || param == "with":
		return experiments.Problem{Pos: exp.KeyPosOf(path + ".with"), Path: path + ".with", Message: pp.Message, Hint: list}
	}
	p := experiments.Problem{Pos: exp.KeyPosOf(path + ".with." + param), Path: path + ".with." + param, Message: pp.Message}
	doc, known := params[param]
	switch {
	case !known && len(names) > 0:
		p.Hint = experiments.Suggest(param, names)
		if !strings.HasPrefix(p.Hint, "did you mean") {
			p.Hint = list
		}
	case !exp.Has(path + ".with." + param):
		// Missing: the position is that of `with` (or the fault); say what
		// the parameter is.
		p.Hint = doc
		if p.Hint == "" {
			p.Hint = list
		}
	default:
		p.Hint = doc
	}
	if strings.Contains(p.Message, p.Hint) {
		p.Hint = ""
	}
	return p
}

// pluginParamDocs reads the parameter names and their descriptions from a
// plugin's JSON Schema of `with`; unreadable schemas give none.
func pluginParamDocs(schema json.RawMessage) map[string]string {
	var s struct {
		Properties map[string]struct {
			Description string `json:"description"`
		} `json:"properties"`
	}
	out := map[string]string{}
	if len(schema) == 0 || json.Unmarshal(schema, &s) != nil {
		return out
	}
	for name, p := range s.Properties {
		out[name] = p.Description
	}
	return out
}

// pluginTarget is the target as a plugin is told it: every kind of the
// format, with its typed fields.
func pluginTarget(name string, t *experiments.Target) sdk.Target {
	target := sdk.Target{Name: name, Kind: t.Kind()}
	switch {
	case t.Endpoint != nil:
		target.Endpoint = &sdk.EndpointTarget{Listen: t.Endpoint.Listen, Upstream: t.Endpoint.Upstream}
	case t.Kubernetes != nil:
		k := t.Kubernetes
		target.Kubernetes = &sdk.KubernetesTarget{Namespace: k.Namespace, Selector: k.Selector, Pick: sdk.Pick{Count: k.Pick.Count, Percent: float64(k.Pick.Percent), All: k.Pick.All}}
	case t.Host != nil:
		target.Host = &sdk.HostTarget{}
	case t.Process != nil:
		target.Process = &sdk.ProcessTarget{PID: t.Process.PID, Name: t.Process.Name, Cgroup: t.Process.Cgroup}
	}
	return target
}
