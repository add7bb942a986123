// Package cpustress is the `cpustress` fault: it holds a target CPU load,
// a percent of one core per worker, on the host or inside a process's
// cgroup, for as long as the fault lives, and lets go at once on revert.
//
// Workers are child processes of the plugin (a shell busy loop, so nothing
// but /bin/sh is needed), started stopped, placed in the target's cgroups
// while stopped, and then let run and stopped by the plugin in 10 ms
// periods (SIGCONT/SIGSTOP). The plugin measures each worker's CPU time
// (its process CPU clock, the kernel's own accounting) every period and
// gives it what it still owes the target: a feedback loop on measured CPU
// time, not an open-loop duty cycle, so the load holds when the machine is
// busy. A worker that cannot get its share while it runs all the time
// raises its own scheduling priority a step (where the plugin may), and
// lowers it again once it has room.
//
// Child processes rather than threads: a thread can join another cgroup
// only through cgroup v1 `tasks` (cgroup v2 moves whole processes, or
// threads within one threaded subtree, which the target's cgroup is not),
// and most clusters run v2. A child joins `cgroup.procs` in both. Every
// worker dies with the plugin (Pdeathsig SIGKILL), and carries a marker in
// its command line (argv[0] chaos-cpustress-worker, the handle and the
// injection id), so a fresh plugin can find and kill what a dead one left
// (RevertByID). Nothing else is changed: no cgroup is created and no knob
// is written, so killing the workers leaves the cgroup as it was.
//
// This package must only depend on plugins/sdk, the standard library and
// golang.org/x/sys.
package cpustress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// Version is the plugin's version.
const Version = "0.1.0"

// maxWorkers bounds `workers`: more burners than this is a fork bomb, not a
// load.
const maxWorkers = 256

// paramsSchema is the JSON Schema of the `with` parameters and the one
// source of truth for them (sdk.DecodeParams checks them against it).
func paramsSchema() string {
	return fmt.Sprintf(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["load"],
  "properties": {
    "load":    {"type": "integer", "minimum": 1, "maximum": 100, "description": "percent of one core each worker holds busy, 1 to 100"},
    "workers": {"type": ["integer", "string"], "minimum": 1, "maximum": %[1]d, "pattern": "^all$", "default": 1, "description": "how many workers (each a process holding load percent of one core), 1 to %[1]d, or all: one per CPU of the machine"},
    "ramp":    {"type": "string", "format": "duration", "pattern": "^[0-9.]+(ns|us|µs|ms|s|m|h)([0-9.]+(ns|us|µs|ms|s|m|h))*$", "x-minimum": "0s", "x-maximum": "1h", "description": "time to raise the load linearly from 0 to load, at most 1h, e.g. 10s; 0 (the default) starts at full load"}
  }
}`, maxWorkers)
}

// Params are the fault's `with` parameters.
type Params struct {
	// Load is the percent of one core each worker holds, 1 to 100.
	Load int
	// Workers is how many workers; 0 means one per CPU ("all").
	Workers int
	// Ramp is how long the load takes to rise from 0 to Load.
	Ramp time.Duration
}

// workerCount is how many workers the parameters ask for on this machine.
func (p Params) workerCount() int {
	if p.Workers == 0 {
		return runtime.NumCPU()
	}
	return p.Workers
}

// workersParam decodes `workers`: a number, or "all" (0).
type workersParam int

func (w *workersParam) UnmarshalJSON(b []byte) error {
	if string(b) == `"all"` {
		*w = 0
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*w = workersParam(n)
	return nil
}

type wireParams struct {
	Load    int           `json:"load"`
	Workers workersParam  `json:"workers"`
	Ramp    time.Duration `json:"ramp"`
}

// parse decodes the parameters against the schema; it has nothing to check
// by hand.
func parse(raw json.RawMessage) (Params, []sdk.ParamProblem) {
	w := wireParams{Workers: 1}
	if probs := sdk.DecodeParams(raw, json.RawMessage(paramsSchema()), &w); len(probs) > 0 {
		return Params{}, probs
	}
	return Params{Load: w.Load, Workers: int(w.Workers), Ramp: w.Ramp}, nil
}

// Fault is the cpustress plugin. Its zero value is not usable; call New.
type Fault struct {
	mu   sync.Mutex
	held map[string]*stress // by handle
	seq  int
	// self names this plugin process in handles, so that handles of two
	// plugin processes never collide (a fresh plugin finds workers by them).
	self string
}

// New returns a cpustress plugin holding nothing.
func New() *Fault {
	return &Fault{held: map[string]*stress{}, self: fmt.Sprintf("%d.%d", os.Getpid(), time.Now().UnixNano())}
}

// Describe implements sdk.Fault.
func (f *Fault) Describe() sdk.Description {
	return sdk.Description{
		Name:         "cpustress",
		Version:      Version,
		Summary:      "holds a CPU load (percent of a core per worker) on the host or inside a process's cgroup",
		ParamsSchema: json.RawMessage(paramsSchema()),
		TargetKinds:  []string{sdk.KindHost, sdk.KindProcess},
	}
}

// Validate implements sdk.Fault. It also looks the target up (reading /proc
// and the cgroup file systems, changing nothing): a process that does not
// exist, or a cgroup the plugin may not join, is a problem of the file
// before anything starts.
func (f *Fault) Validate(_ context.Context, req sdk.Request) []sdk.ParamProblem {
	_, probs := parse(req.Params)
	if _, err := locate(req.Target); err != nil {
		probs = append([]sdk.ParamProblem{{Param: "target", Message: err.Error()}}, probs...)
	}
	return probs
}

// Resolve implements sdk.Resolver: the host, or the process (pid and start
// time) and the cgroups its workers would join, or the cgroup itself.
func (f *Fault) Resolve(ctx context.Context, req sdk.Request) (sdk.Resolution, error) {
	if err := ctx.Err(); err != nil {
		return sdk.Resolution{}, err
	}
	pl, err := locate(req.Target)
	if err != nil {
		return sdk.Resolution{}, fmt.Errorf("%w: %w", sdk.ErrInvalidParams, err)
	}
	return sdk.Resolution{Things: []sdk.Resolved{pl.thing}}, nil
}

// Inject implements sdk.Fault: when it returns, every worker is in its
// cgroups and running.
func (f *Fault) Inject(ctx context.Context, req sdk.Request) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	params, probs := parse(req.Params)
	if len(probs) > 0 {
		return "", fmt.Errorf("%w: %s: %s", sdk.ErrInvalidParams, probs[0].Param, probs[0].Message)
	}
	pl, err := locate(req.Target)
	if err != nil {
		return "", fmt.Errorf("%w: %w", sdk.ErrInvalidParams, err)
	}
	f.mu.Lock()
	f.seq++
	handle := fmt.Sprintf("stress-%s-%d", f.self, f.seq)
	f.mu.Unlock()
	if len(pl.cgroups) > 0 {
		// The handle, which the ledger keeps, says what was joined.
		handle += "@" + pl.joined()
	}
	s, err := startStress(ctx, handle, req.ID, params, pl.cgroups)
	if err != nil {
		return "", fmt.Errorf("start cpu stress on %s: %w", pl.thing.Name, err)
	}
	f.mu.Lock()
	f.held[handle] = s
	f.mu.Unlock()
	return handle, nil
}

// Revert implements sdk.Fault: every worker of the handle is killed at
// once, and Revert returns when they are gone. A handle this process does
// not hold (a restarted plugin) is looked for by its marker, so a worker
// that outlived its plugin is killed too.
func (f *Fault) Revert(ctx context.Context, handle string) (bool, error) {
	f.mu.Lock()
	s, ok := f.held[handle]
	delete(f.held, handle)
	f.mu.Unlock()
	if ok {
		return s.stop(ctx), nil
	}
	return killMarked(ctx, func(m marker) bool { return m.handle == handle })
}

// RevertByID implements sdk.RevertByID: it kills every worker marked with
// the id, whichever plugin process started it.
func (f *Fault) RevertByID(ctx context.Context, id string) (bool, error) {
	if id == "" {
		return false, nil
	}
	f.mu.Lock()
	var mine []*stress
	for h, s := range f.held {
		if s.id == id {
			mine = append(mine, s)
			delete(f.held, h)
		}
	}
	f.mu.Unlock()
	was := false
	for _, s := range mine {
		was = s.stop(ctx) || was
	}
	other, err := killMarked(ctx, func(m marker) bool { return m.id == id })
	return was || other, err
}

// Status implements sdk.StatusReporter.
func (f *Fault) Status(_ context.Context, handle string) (sdk.Status, error) {
	f.mu.Lock()
	s, ok := f.held[handle]
	f.mu.Unlock()
	if !ok || !s.alive() {
		return sdk.Status{}, nil
	}
	return sdk.Status{Active: true, Detail: s.describe()}, nil
}

// errNoShell means there is no /bin/sh to run a worker with.
var errNoShell = errors.New("no /bin/sh to run the workers")

// joined lists the cgroups of a placement for a handle: "cpu:/a+cpuset:/a".
func (p placement) joined() string {
	parts := make([]string, len(p.cgroups))
	for i, c := range p.cgroups {
		parts[i] = c.String()
	}
	return strings.Join(parts, "+")
}
