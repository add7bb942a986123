package podkill

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/chaos-run/chaos/internal/kubeconfig"
	"github.com/chaos-run/chaos/plugins/sdk"
)

// Client rate limits. client-go's default (5 QPS, burst 10) makes 100
// deletions take about 18 s; a kill is a burst of deletes that should land
// together, and the API server's own priority and fairness protects it.
const (
	clientQPS   = 500
	clientBurst = 1000
	// deleters is how many deletions are in flight at once.
	deleters = 32
)

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ownNamespace is the namespace the runner runs in, when it runs in a pod:
// $POD_NAMESPACE (the downward API) or the service account's namespace.
func ownNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	b, err := os.ReadFile(serviceAccountNamespace)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

type clientSet struct {
	kube kubernetes.Interface
}

// client builds (once per kubeconfig and context) a client the way kubectl
// finds its configuration: the kubeconfig parameter, else $KUBECONFIG (which
// a run's --kubeconfig sets for its plugins), else ~/.kube/config, else the
// in-cluster service account; the context parameter, else the run's
// --context (kubeconfig.EnvContext), else the kubeconfig's current one.
func (f *Fault) client(p Params) (*clientSet, error) {
	key := p.Kubeconfig + "\x00" + p.Context
	f.mu.Lock()
	defer f.mu.Unlock()
	if cs, ok := f.clients[key]; ok {
		return cs, nil
	}
	cfg, err := restConfig(p.Kubeconfig, p.Context)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	cfg.UserAgent = "chaos-podkill/" + Version
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("make kubernetes client: %w", err)
	}
	cs := &clientSet{kube: kc}
	f.clients[key] = cs
	return cs, nil
}

func restConfig(path, kcontext string) (*rest.Config, error) {
	if kcontext == "" {
		kcontext = os.Getenv(kubeconfig.EnvContext)
	}
	cfg, err := kubeconfig.Source{Path: path, Context: kcontext}.Load()
	if errors.Is(err, kubeconfig.ErrNoConfig) {
		return nil, fmt.Errorf("%w: set with.kubeconfig or $KUBECONFIG, or run in a pod with a service account", ErrNoConfig)
	}
	return cfg, err
}

// canAct asks the API server whether these credentials may list and delete
// pods in ns, so that a role lacking a verb is named before anything is
// killed (every authenticated user may ask this about itself).
func (cs *clientSet) canAct(ctx context.Context, ns string) error {
	var missing []string
	for _, verb := range []string{"list", "delete"} {
		review := &authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: "pods"},
		}}
		got, err := cs.kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("ask the API server whether these credentials may %s pods in %s: %w", verb, ns, err)
		}
		if !got.Status.Allowed {
			missing = append(missing, fmt.Sprintf("%q on pods", verb))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: the credentials may not act on pods in namespace %s: missing %s (see deploy/rbac-podkill.yaml)",
			ErrForbidden, ns, strings.Join(missing, " and "))
	}
	return nil
}

// candidates lists the pods the pick chooses from: matching the selectors,
// not already terminating, Running and Ready unless onlyReady is false. A
// candidate no controller owns is refused unless allowUnowned, naming it.
func (cs *clientSet) candidates(ctx context.Context, k *sdk.KubernetesTarget, p Params) ([]corev1.Pod, error) {
	list, err := cs.kube.CoreV1().Pods(k.Namespace).List(ctx, metav1.ListOptions{LabelSelector: k.Selector, FieldSelector: p.FieldSelector})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("%w: list pods in %s: %w", ErrForbidden, k.Namespace, err)
		}
		return nil, fmt.Errorf("list pods in %s matching %q: %w", k.Namespace, k.Selector, err)
	}
	var out []corev1.Pod
	var unowned []string
	for _, pod := range list.Items {
		if pod.DeletionTimestamp != nil {
			continue
		}
		if p.OnlyReady && (pod.Status.Phase != corev1.PodRunning || !podReady(&pod)) {
			continue
		}
		if metav1.GetControllerOf(&pod) == nil && !p.AllowUnowned {
			unowned = append(unowned, pod.Namespace+"/"+pod.Name)
		}
		out = append(out, pod)
	}
	if len(unowned) > 0 {
		return nil, fmt.Errorf("%w: %s (nothing would replace them; set allowUnowned: true to kill them anyway)", ErrUnowned, joinNames(unowned, 10))
	}
	if len(out) == 0 {
		what := "pods"
		if p.OnlyReady {
			what = "Ready pods"
		}
		return nil, fmt.Errorf("%w: no %s in namespace %s match %q (of %d listed)", ErrNoPods, what, k.Namespace, k.Selector, len(list.Items))
	}
	return out, nil
}

// pick chooses the pods the fault acts on: the first n in an order that is
// a hash of the run id and each uid, so Resolve and Inject of one run agree
// and two runs differ.
func pick(cands []corev1.Pod, pk sdk.Pick, runID string) []corev1.Pod {
	n := 1
	switch {
	case pk.All:
		n = len(cands)
	case pk.Percent > 0:
		n = int(math.Ceil(pk.Percent / 100 * float64(len(cands))))
	case pk.Count > 0:
		n = pk.Count
	}
	n = min(n, len(cands))
	rank := func(p corev1.Pod) uint64 {
		h := fnv.New64a()
		_, _ = h.Write([]byte(runID + "/" + string(p.UID)))
		return h.Sum64()
	}
	sorted := slices.Clone(cands)
	slices.SortFunc(sorted, func(a, b corev1.Pod) int {
		ra, rb := rank(a), rank(b)
		switch {
		case ra < rb:
			return -1
		case ra > rb:
			return 1
		}
		return strings.Compare(string(a.UID), string(b.UID))
	})
	return sorted[:n]
}

func podName(p corev1.Pod) string {
	node := p.Spec.NodeName
	if node == "" {
		node = "unscheduled"
	}
	return fmt.Sprintf("%s/%s (uid %s, node %s)", p.Namespace, p.Name, p.UID, node)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// deleteAll deletes the pods, deleters at a time, each with a uid
// precondition, and records each one the API server accepted in k. It
// stops starting deletions once ctx is done.
func (cs *clientSet) deleteAll(ctx context.Context, pods []corev1.Pod, p Params, k *kill) error {
	opts := metav1.DeleteOptions{}
	switch {
	case p.Force:
		opts.GracePeriodSeconds = new(int64(0))
	case p.GracePeriod > 0:
		opts.GracePeriodSeconds = new(int64(p.GracePeriod / time.Second))
	}
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, deleters)
	var wg sync.WaitGroup
	for _, pod := range pods {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			o := opts
			o.Preconditions = metav1.NewUIDPreconditions(string(pod.UID))
			err := cs.kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, o)
			at := time.Now()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				k.pods = append(k.pods, &killed{pod: pod, at: at})
			case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
				// Gone or replaced since it was listed: not ours to kill.
			case apierrors.IsForbidden(err):
				errs = append(errs, fmt.Errorf("%w: delete pod %s/%s: %w", ErrForbidden, pod.Namespace, pod.Name, err))
			default:
				errs = append(errs, fmt.Errorf("delete pod %s/%s: %w", pod.Namespace, pod.Name, err))
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d deletions failed: %w", len(errs), len(pods), errs[0])
	}
	return nil
}
