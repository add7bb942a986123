package probes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/kubeconfig"
)

// ErrNoKubeconfig is why a kubernetes probe cannot be built: no kubeconfig
// ($KUBECONFIG, ~/.kube/config) and not running in a pod.
var ErrNoKubeconfig = kubeconfig.ErrNoConfig

// Bounds of one kubernetes observation's pod list.
const (
	// MaxKubernetesPods is the most pods one kubernetes probe counts. More
	// is an observation error, never a count of the first ones: a partial
	// count would be a guess.
	MaxKubernetesPods = 5000
	// kubernetesPodPage is the page size of the pod list.
	kubernetesPodPage = 500
)

// kubernetesProber reads a workload's status and the pods it selects (or
// pods by selector) once per observation: one GET and a paginated, bounded
// LIST, all under the probe's timeout (the observation's ctx), never
// kubectl and no informer, so an observation is what the API server said
// at that moment. The one thing it keeps between observations is each
// container's restart count, which is how restarts within a window can be
// counted at all (restartTracker).
type kubernetesProber struct {
	spec   *experiments.KubernetesProbe
	client kubernetes.Interface
	now    func() time.Time

	mu       sync.Mutex
	restarts *restartTracker
	// started numbers the observations; applied is the latest whose pods
	// the tracker has taken. An observation that outlived its successor
	// (its answer came as its timeout ran out) must not take the tracker
	// back to older counts, or the next one would count restarts twice.
	started, applied uint64
}

// KubernetesProber is the constructor of kubernetes probes that reach the
// cluster through src (the run's --kubeconfig and --context) instead of
// kubectl's defaults. It reads files only: a missing kubeconfig or an
// unknown context fails here, before anything is injected.
func KubernetesProber(src kubeconfig.Source) Constructor {
	return func(p *experiments.Probe) (Prober, error) {
		cfg, err := src.Load()
		if err != nil {
			return nil, fmt.Errorf("kubernetes probe of %s: %w", p.Kubernetes.Describe(), err)
		}
		// A probe makes two calls per tick (more for many pods); the
		// defaults (5 QPS) would throttle several probes at 1/s.
		cfg.QPS, cfg.Burst = 50, 100
		cfg.UserAgent = "chaos-probe"
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("kubernetes probe of %s: make client: %w", p.Kubernetes.Describe(), err)
		}
		return newKubernetesProberFor(p.Kubernetes, c, time.Now), nil
	}
}

// newKubernetesProber builds a probe with kubectl's configuration:
// $KUBECONFIG, ~/.kube/config, else the in-cluster service account.
func newKubernetesProber(p *experiments.Probe) (Prober, error) {
	return KubernetesProber(kubeconfig.Source{})(p)
}

func newKubernetesProberFor(spec *experiments.KubernetesProbe, c kubernetes.Interface, now func() time.Time) *kubernetesProber {
	return &kubernetesProber{spec: spec, client: c, now: now, restarts: newRestartTracker(spec.EffectiveRestartWindow())}
}

// Probe reads the workload (if any), then its pods.
func (p *kubernetesProber) Probe(ctx context.Context) experiments.Observation {
	p.mu.Lock()
	p.started++
	seq := p.started
	p.mu.Unlock()
	o, selector, err := p.workload(ctx)
	if err == nil {
		var pods []corev1.Pod
		if pods, err = p.listPods(ctx, selector); err == nil {
			countPods(&o, pods)
			o.Restarts = p.countRestarts(seq, pods)
			o.OK = true
			return o
		}
	}
	msg := err.Error()
	if ctx.Err() != nil {
		msg = describeErr(ctx, err)
	}
	return experiments.KubernetesObservation{Kind: p.spec.Kind(), Error: msg}
}

// countRestarts gives the pods of observation seq to the restart tracker,
// unless a later observation already gave it newer ones; then it counts
// the restarts as of that later observation.
func (p *kubernetesProber) countRestarts(seq uint64, pods []corev1.Pod) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq < p.applied {
		return p.restarts.count(p.now())
	}
	p.applied = seq
	return p.restarts.observe(p.now(), pods)
}

// workload reads the workload's counts and the label selector of its pods;
// for a pods probe, the probe's own selector.
func (p *kubernetesProber) workload(ctx context.Context) (experiments.KubernetesObservation, string, error) {
	o := experiments.KubernetesObservation{Kind: p.spec.Kind()}
	ns, name := p.spec.Namespace(), p.spec.Name()
	var (
		sel *metav1.LabelSelector
		err error
	)
	switch o.Kind {
	case experiments.KubernetesPodsKind:
		return o, p.spec.Pods.Selector, nil
	case experiments.KubernetesDeployment:
		var d *appsv1.Deployment
		if d, err = p.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			o.Desired, o.Ready, o.Available, o.Updated = replicas(d.Spec.Replicas), int(d.Status.ReadyReplicas), int(d.Status.AvailableReplicas), int(d.Status.UpdatedReplicas)
			sel = d.Spec.Selector
		}
	case experiments.KubernetesStatefulSet:
		var s *appsv1.StatefulSet
		if s, err = p.client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			o.Desired, o.Ready, o.Available, o.Updated = replicas(s.Spec.Replicas), int(s.Status.ReadyReplicas), int(s.Status.AvailableReplicas), int(s.Status.UpdatedReplicas)
			sel = s.Spec.Selector
		}
	case experiments.KubernetesDaemonSet:
		var d *appsv1.DaemonSet
		if d, err = p.client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			o.Desired, o.Ready, o.Available, o.Updated = int(d.Status.DesiredNumberScheduled), int(d.Status.NumberReady), int(d.Status.NumberAvailable), int(d.Status.UpdatedNumberScheduled)
			sel = d.Spec.Selector
		}
	default:
		return o, "", errors.New("the probe watches nothing")
	}
	if apierrors.IsNotFound(err) {
		return o, "", fmt.Errorf("%s not found", p.spec.Describe())
	}
	if err != nil {
		return o, "", fmt.Errorf("read %s: %w", p.spec.Describe(), err)
	}
	// apps/v1 requires a selector that selects something; an empty one
	// would count every pod of the namespace as the workload's.
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return o, "", fmt.Errorf("%s has no pod selector", p.spec.Describe())
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return o, "", fmt.Errorf("%s has a pod selector the probe cannot read: %w", p.spec.Describe(), err)
	}
	return o, s.String(), nil
}

// replicas is spec.replicas with the API's default of 1.
func replicas(r *int32) int {
	if r == nil {
		return 1
	}
	return int(*r)
}

// listPods lists the pods selector (and a pods probe's field selector)
// matches, page by page, refusing more than MaxKubernetesPods.
func (p *kubernetesProber) listPods(ctx context.Context, selector string) ([]corev1.Pod, error) {
	opts := metav1.ListOptions{LabelSelector: selector, Limit: kubernetesPodPage}
	if p.spec.Pods != nil {
		opts.FieldSelector = p.spec.Pods.FieldSelector
	}
	var pods []corev1.Pod
	for {
		list, err := p.client.CoreV1().Pods(p.spec.Namespace()).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list pods of %s: %w", p.spec.Describe(), err)
		}
		pods = append(pods, list.Items...)
		if len(pods) > MaxKubernetesPods {
			return nil, fmt.Errorf("more than %d pods match %s; the probe counts at most %d: narrow the selector",
				MaxKubernetesPods, p.spec.Describe(), MaxKubernetesPods)
		}
		if list.Continue == "" {
			return pods, nil
		}
		opts.Continue = list.Continue
	}
}

// countPods fills the pod counts of o.
func countPods(o *experiments.KubernetesObservation, pods []corev1.Pod) {
	o.Pods = len(pods)
	for i := range pods {
		pod := &pods[i]
		switch pod.Status.Phase {
		case corev1.PodRunning:
			o.PodsRunning++
		case corev1.PodPending, "":
			// The API server sets Pending on create; an empty phase is a
			// pod nothing has looked at yet, which is pending too.
			o.PodsPending++
		case corev1.PodSucceeded:
			o.PodsSucceeded++
		case corev1.PodFailed:
			o.PodsFailed++
		default:
			o.PodsUnknown++
		}
		switch {
		case pod.DeletionTimestamp != nil:
			o.PodsTerminating++
		case podReady(pod):
			o.PodsReady++
		}
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
