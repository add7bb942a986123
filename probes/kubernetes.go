package probes

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/chaos-run/chaos/experiments"
)

// ErrNoKubeconfig is why a kubernetes probe cannot be built: no kubeconfig
// ($KUBECONFIG, ~/.kube/config) and not running in a pod.
var ErrNoKubeconfig = errors.New("no kubernetes configuration")

// kubernetesProber reads one Deployment's status per observation: one
// bounded GET under the probe's timeout (the observation's ctx), never
// kubectl and no informer, so an observation is exactly what the API server
// said at that moment.
type kubernetesProber struct {
	spec   *experiments.KubernetesProbe
	client kubernetes.Interface
}

// newKubernetesProber builds the client the way kubectl finds its
// configuration ($KUBECONFIG, ~/.kube/config, else the in-cluster service
// account). It reads files only; the network is first reached by Probe.
func newKubernetesProber(p *experiments.Probe) (Prober, error) {
	cfg, err := kubeConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes probe of deployment %s: %w", p.Kubernetes.Deployment, err)
	}
	// A probe makes one call per tick; the defaults would still throttle
	// several probes at 1/s, so give them room.
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "chaos-probe"
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes probe of deployment %s: make client: %w", p.Kubernetes.Deployment, err)
	}
	return &kubernetesProber{spec: p.Kubernetes, client: c}, nil
}

func kubeConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err == nil {
		return cfg, nil
	}
	if clientcmd.IsEmptyConfig(err) {
		if in, ierr := rest.InClusterConfig(); ierr == nil {
			return in, nil
		}
		return nil, fmt.Errorf("%w: set KUBECONFIG or run in a pod with a service account", ErrNoKubeconfig)
	}
	return nil, fmt.Errorf("load kubeconfig: %w", err)
}

// Probe reads the Deployment once.
func (p *kubernetesProber) Probe(ctx context.Context) experiments.Observation {
	d, err := p.client.AppsV1().Deployments(p.spec.Namespace()).Get(ctx, p.spec.Name(), metav1.GetOptions{})
	if err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return experiments.KubernetesObservation{Error: "deployment " + p.spec.Deployment + " not found"}
		case ctx.Err() != nil:
			return experiments.KubernetesObservation{Error: describeErr(ctx, err)}
		}
		return experiments.KubernetesObservation{Error: err.Error()}
	}
	desired := 1
	if d.Spec.Replicas != nil {
		desired = int(*d.Spec.Replicas)
	}
	return experiments.KubernetesObservation{
		OK:        true,
		Desired:   desired,
		Ready:     int(d.Status.ReadyReplicas),
		Available: int(d.Status.AvailableReplicas),
		Updated:   int(d.Status.UpdatedReplicas),
	}
}
