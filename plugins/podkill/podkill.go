// Package podkill is the `podkill` fault: it deletes pods of a Kubernetes
// target (namespace, label selector, pick) through client-go, honouring the
// grace period, protected namespaces and the blast radius, and on revert
// waits, bounded, for each killed pod's owner to have a Ready replacement.
//
// A kill cannot be undone. "Revert" here means "the fault is over and its
// effect is measured": the plugin waits for the owning controller's new pod
// to become Ready and records when. Nothing is held in the cluster or in
// the plugin process, so a revert by id in a fresh process has nothing to
// undo (RevertByID says so), and a lease that runs out only ends the wait.
//
// Resolve and Inject choose the same pods without sharing memory: the
// candidates are ordered by a hash of the run id and the pod's uid, so a
// pick is random across runs and stable within one (and the plugin could
// be served from a node agent later). Deletions carry a uid precondition,
// so a pod replaced between resolve and inject by one of the same name is
// never killed by mistake.
//
// This package must only depend on plugins/sdk, client-go and the standard
// library.
package podkill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// Version is the plugin's version.
const Version = "0.1.0"

// Causes of a refusal, for errors.Is.
var (
	// ErrProtectedNamespace: the target's namespace must never be faulted.
	ErrProtectedNamespace = errors.New("protected namespace")
	// ErrUnowned: a pod has no controller to replace it.
	ErrUnowned = errors.New("pod has no controller")
	// ErrForbidden: the credentials lack a permission the fault needs.
	ErrForbidden = errors.New("missing RBAC permission")
	// ErrNoPods: the selector matches no pod the fault may act on.
	ErrNoPods = errors.New("no matching pods")
	// ErrNoConfig: no kubeconfig and not in a cluster.
	ErrNoConfig = errors.New("no kubernetes configuration")
)

// defaultRecoveryTimeout bounds how long a revert waits for replacements.
const defaultRecoveryTimeout = 2 * time.Minute

// paramsSchema is the JSON Schema of the `with` parameters and the one
// source of truth for them.
const paramsSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "gracePeriod":     {"type": "string", "format": "duration", "pattern": "^[0-9.]+(ns|us|µs|ms|s|m|h)([0-9.]+(ns|us|µs|ms|s|m|h))*$", "x-minimum": "1s", "x-maximum": "1h", "description": "grace period of each deletion, e.g. 5s; default: each pod's own terminationGracePeriodSeconds"},
    "force":           {"type": "boolean", "default": false, "description": "delete with grace period 0 (the pod gets no time to shut down); only when asked"},
    "fieldSelector":   {"type": "string", "description": "a field selector narrowing the pods, e.g. spec.nodeName=node-1"},
    "onlyReady":       {"type": "boolean", "default": true, "description": "pick only Running pods whose Ready condition is True (default true)"},
    "allowUnowned":    {"type": "boolean", "default": false, "description": "also kill pods no controller owns (nothing will replace them)"},
    "recoveryTimeout": {"type": "string", "format": "duration", "pattern": "^[0-9.]+(ns|us|µs|ms|s|m|h)([0-9.]+(ns|us|µs|ms|s|m|h))*$", "x-minimum": "1s", "x-maximum": "1h", "description": "how long the revert waits for each killed pod's replacement to be Ready, default 2m"},
    "kubeconfig":      {"type": "string", "description": "path of a kubeconfig; default $KUBECONFIG, ~/.kube/config, then the in-cluster service account"},
    "context":         {"type": "string", "description": "the kubeconfig context to use; default its current context"}
  }
}`

// Params are the fault's `with` parameters.
type Params struct {
	GracePeriod     time.Duration `json:"gracePeriod"`
	Force           bool          `json:"force"`
	FieldSelector   string        `json:"fieldSelector"`
	OnlyReady       bool          `json:"onlyReady"`
	AllowUnowned    bool          `json:"allowUnowned"`
	RecoveryTimeout time.Duration `json:"recoveryTimeout"`
	Kubeconfig      string        `json:"kubeconfig"`
	Context         string        `json:"context"`
}

func parse(raw json.RawMessage) (Params, []sdk.ParamProblem) {
	p := Params{OnlyReady: true, RecoveryTimeout: defaultRecoveryTimeout}
	if probs := sdk.DecodeParams(raw, json.RawMessage(paramsSchema), &p); len(probs) > 0 {
		return Params{}, probs
	}
	if p.Force && p.GracePeriod > 0 {
		return Params{}, []sdk.ParamProblem{{Param: "with.force", Message: "force deletes with grace period 0; do not also set gracePeriod"}}
	}
	return p, nil
}

// Fault is the podkill plugin. Its zero value is not usable; call New.
type Fault struct {
	mu    sync.Mutex
	kills map[string]*kill // by handle, kept after revert for Status
	// picks are the pods the last Resolve of a request picked, by
	// pickKey: the resolve call carries no run id, so Inject kills what
	// Resolve named (the report and the locks) while they are candidates.
	picks map[string][]types.UID
	order []string // handles of kills, oldest first, to bound kills
	seq   int
	self  string
	// clients are built once per kubeconfig/context pair.
	clients map[string]*clientSet
}

// New returns a podkill plugin holding nothing.
func New() *Fault {
	return &Fault{kills: map[string]*kill{}, picks: map[string][]types.UID{}, clients: map[string]*clientSet{}, self: fmt.Sprintf("%d", time.Now().UnixNano())}
}

// Describe implements sdk.Fault.
func (f *Fault) Describe() sdk.Description {
	return sdk.Description{
		Name:    "podkill",
		Version: Version,
		Summary: "deletes the picked pods of a kubernetes target (grace period honoured, force only when asked); " +
			"a kill is not revertible: revert waits for each owner's replacement to become Ready and records when",
		ParamsSchema:  json.RawMessage(paramsSchema),
		TargetKinds:   []string{sdk.KindKubernetes},
		CanResolve:    true,
		CanRevertByID: true,
	}
}

// Validate implements sdk.Fault. Beyond the parameters it checks what can
// be known without changing anything: the namespace is not protected, the
// credentials may list and delete pods there (a SelfSubjectAccessReview per
// verb, so a role lacking delete is named before anything is killed), and
// every pod the pick could choose has a controller unless allowUnowned.
func (f *Fault) Validate(ctx context.Context, req sdk.Request) []sdk.ParamProblem {
	p, probs := parse(req.Params)
	k := req.Target.Kubernetes
	if k == nil {
		return append(probs, sdk.ParamProblem{Param: "target", Message: "podkill acts on a kubernetes target (namespace, selector, pick)"})
	}
	if err := checkNamespace(k.Namespace); err != nil {
		return append(probs, sdk.ParamProblem{Param: "target", Message: err.Error()})
	}
	if len(probs) > 0 {
		return probs
	}
	cs, err := f.client(p)
	if err != nil {
		return []sdk.ParamProblem{{Param: "with.kubeconfig", Message: err.Error()}}
	}
	if err := cs.canAct(ctx, k.Namespace); err != nil {
		return []sdk.ParamProblem{{Param: "target", Message: err.Error()}}
	}
	if _, err := cs.candidates(ctx, k, p); err != nil {
		return []sdk.ParamProblem{{Param: "target", Message: err.Error()}}
	}
	return nil
}

// Resolve implements sdk.Resolver: the pods the fault will kill, keyed by
// uid, with Total the candidates they are picked from.
func (f *Fault) Resolve(ctx context.Context, req sdk.Request) (sdk.Resolution, error) {
	p, cs, err := f.prepare(req)
	if err != nil {
		return sdk.Resolution{}, err
	}
	cands, err := cs.candidates(ctx, req.Target.Kubernetes, p)
	if err != nil {
		return sdk.Resolution{}, err
	}
	picked := pick(cands, req.Target.Kubernetes.Pick, req.RunID)
	f.rememberPick(req, picked)
	res := sdk.Resolution{Total: len(cands)}
	for _, pod := range picked {
		res.Things = append(res.Things, sdk.Resolved{Key: "pod:" + string(pod.UID), Kind: "pod", Name: podName(pod)})
	}
	return res, nil
}

// prepare parses the parameters and gets the client, refusing a protected
// namespace before any call.
func (f *Fault) prepare(req sdk.Request) (Params, *clientSet, error) {
	k := req.Target.Kubernetes
	if k == nil {
		return Params{}, nil, fmt.Errorf("target %s is not a kubernetes target", req.Target.Name)
	}
	if err := checkNamespace(k.Namespace); err != nil {
		return Params{}, nil, err
	}
	p, probs := parse(req.Params)
	if len(probs) > 0 {
		return Params{}, nil, fmt.Errorf("%w: %s: %s", sdk.ErrInvalidParams, probs[0].Param, probs[0].Message)
	}
	cs, err := f.client(p)
	return p, cs, err
}

// Inject implements sdk.Fault: it deletes the picked pods and returns once
// the API server accepted every deletion. The handle names what was killed,
// so the ledger (and `chaos recover`) show it.
func (f *Fault) Inject(ctx context.Context, req sdk.Request) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	p, cs, err := f.prepare(req)
	if err != nil {
		return "", err
	}
	cands, err := cs.candidates(ctx, req.Target.Kubernetes, p)
	if err != nil {
		return "", err
	}
	picked := f.resolvedPick(req, cands)
	if picked == nil {
		picked = pick(cands, req.Target.Kubernetes.Pick, req.RunID)
	}
	k := &kill{params: p, cs: cs, existed: map[types.UID]bool{}}
	for _, c := range cands {
		k.existed[c.UID] = true
	}
	killErr := cs.deleteAll(ctx, picked, p, k)
	if killErr != nil && len(k.pods) > 0 {
		fmt.Fprintf(os.Stderr, "podkill: partial kill, %d pods deleted: %v\n", len(k.pods), killErr)
	}
	if len(k.pods) == 0 {
		return "", fmt.Errorf("kill pods of target %s (nothing was killed): %w", req.Target.Name, killErr)
	}
	f.mu.Lock()
	f.seq++
	handle := fmt.Sprintf("podkill/%s/%d: %s", f.self, f.seq, k.summary())
	f.keep(handle, k)
	f.mu.Unlock()
	// A partial kill (some deletions failed) still returns its handle:
	// the pods that are gone must reach the ledger and the report.
	return handle, nil
}

// pickKey names a request apart from its run id and fault id.
func pickKey(req sdk.Request) string {
	k := req.Target.Kubernetes
	b, _ := json.Marshal(k)
	return req.Target.Name + "\x00" + string(b) + "\x00" + string(req.Params)
}

// rememberPick keeps what a Resolve picked, bounded at maxKept requests.
func (f *Fault) rememberPick(req sdk.Request, picked []corev1.Pod) {
	uids := make([]types.UID, len(picked))
	for i, p := range picked {
		uids[i] = p.UID
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.picks) >= maxKept {
		clear(f.picks)
	}
	f.picks[pickKey(req)] = uids
}

// resolvedPick is what the last Resolve of this request picked, when every
// one of those pods is still a candidate; nil otherwise.
func (f *Fault) resolvedPick(req sdk.Request, cands []corev1.Pod) []corev1.Pod {
	f.mu.Lock()
	uids, ok := f.picks[pickKey(req)]
	f.mu.Unlock()
	if !ok {
		return nil
	}
	byUID := map[types.UID]corev1.Pod{}
	for _, c := range cands {
		byUID[c.UID] = c
	}
	picked := make([]corev1.Pod, 0, len(uids))
	for _, uid := range uids {
		c, ok := byUID[uid]
		if !ok {
			return nil
		}
		picked = append(picked, c)
	}
	return picked
}

// maxKept bounds the kills a process remembers. A reverted kill is kept so
// that Status can still name its pods and their replacements (the engine
// asks right after the revert, for the report); past the bound the oldest
// reverted kills are forgotten. Kills not yet reverted are never dropped.
const maxKept = 256

// keep records a kill under its handle and forgets the oldest reverted
// kills beyond maxKept. f.mu is held.
func (f *Fault) keep(handle string, k *kill) {
	f.kills[handle] = k
	f.order = append(f.order, handle)
	if len(f.order) <= maxKept {
		return
	}
	kept := f.order[:0]
	over := len(f.order) - maxKept
	for _, h := range f.order {
		if over > 0 && !f.kills[h].active() {
			delete(f.kills, h)
			over--
			continue
		}
		kept = append(kept, h)
	}
	clear(f.order[len(kept):])
	f.order = kept
}

// Revert implements sdk.Fault: a kill cannot be undone, so it waits
// (bounded by recoveryTimeout and ctx) for each killed pod's owner to have a
// Ready replacement, and records when. A handle this process does not know
// (a fresh process, `chaos recover`) holds nothing: nothing to wait for.
func (f *Fault) Revert(ctx context.Context, handle string) (bool, error) {
	f.mu.Lock()
	k, ok := f.kills[handle]
	f.mu.Unlock()
	if !ok || !k.begin() {
		return false, nil
	}
	k.awaitReplacements(ctx)
	return true, nil
}

// RevertByID implements sdk.RevertByID: a kill is not revertible and
// nothing is held, in the cluster or anywhere, under an id.
func (f *Fault) RevertByID(context.Context, string) (bool, error) {
	return false, nil
}

// NotRevertible is what a revert of a kill amounts to, for people.
const NotRevertible = "kill is not revertible; nothing held"

// Status implements sdk.StatusReporter. Detail names every pod killed and
// when its replacement became Ready (or that it did not within the wait).
func (f *Fault) Status(_ context.Context, handle string) (sdk.Status, error) {
	f.mu.Lock()
	k, ok := f.kills[handle]
	f.mu.Unlock()
	if !ok {
		return sdk.Status{Detail: NotRevertible}, nil
	}
	return sdk.Status{Active: k.active(), Detail: k.detail()}, nil
}

// checkNamespace refuses the namespaces no run may fault whatever the file
// says: kube-system, and the namespace the runner itself runs in.
func checkNamespace(ns string) error {
	if ns == "kube-system" {
		return fmt.Errorf("%w: namespace %s is never faulted by podkill", ErrProtectedNamespace, ns)
	}
	if own := ownNamespace(); own != "" && ns == own {
		return fmt.Errorf("%w: namespace %s is the one chaos runs in", ErrProtectedNamespace, ns)
	}
	return nil
}

func joinNames(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], ", "), len(names)-max)
}
