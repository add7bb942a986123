// Package kubeconfig finds the Kubernetes client configuration the way
// kubectl does, for everything in chaos that talks to a cluster (the
// kubernetes probe, the podkill plugin, the CLI's --kubeconfig and
// --context): an explicit kubeconfig file beats $KUBECONFIG, which beats
// ~/.kube/config; with none of them, the in-cluster service account. It
// reads files only; it never reaches the network.
package kubeconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// EnvContext carries the run's --context to the plugin processes it starts
// (--kubeconfig travels as KUBECONFIG, which every client-go program
// already reads). A plugin's own `with: {context}` wins over it.
const EnvContext = "CHAOS_KUBE_CONTEXT"

var (
	// ErrNoConfig: no kubeconfig anywhere and not running in a pod.
	ErrNoConfig = errors.New("no kubernetes configuration")
	// ErrBadConfig: a kubeconfig was named or found but cannot be used (a
	// missing or unreadable file, an unknown context).
	ErrBadConfig = errors.New("unusable kubernetes configuration")
)

// Source is where a client's configuration comes from: kubectl's
// --kubeconfig and --context. Its zero value is kubectl's default.
type Source struct {
	// Path is a kubeconfig file; "" means $KUBECONFIG, else ~/.kube/config.
	Path string
	// Context is the kubeconfig context; "" means its current context.
	Context string
}

// IsZero says whether s names neither a file nor a context.
func (s Source) IsZero() bool { return s.Path == "" && s.Context == "" }

// String says where the configuration comes from, for messages.
func (s Source) String() string {
	from := "the default kubeconfig ($KUBECONFIG or ~/.kube/config)"
	if s.Path != "" {
		from = "kubeconfig " + s.Path
	}
	if s.Context != "" {
		from += ", context " + s.Context
	}
	return from
}

// Load returns the client configuration s names. With no kubeconfig at all,
// and neither a file nor a context asked for, it is the in-cluster service
// account's; failing that, ErrNoConfig. A kubeconfig that was asked for (or
// found) and cannot be used is ErrBadConfig, saying why: a missing file and
// an unknown context are mistakes, not reasons to fall back to another
// cluster.
func (s Source) Load() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if s.Path != "" {
		if _, err := os.Stat(s.Path); err != nil {
			// The path is said once: "kubeconfig F: no such file or directory".
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("%w: kubeconfig %s: %w", ErrBadConfig, s.Path, err)
		}
		rules.ExplicitPath = s.Path
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: s.Context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err == nil {
		return cfg, nil
	}
	if s.IsZero() && clientcmd.IsEmptyConfig(err) {
		if in, ierr := rest.InClusterConfig(); ierr == nil {
			return in, nil
		}
		return nil, fmt.Errorf("%w: set KUBECONFIG or --kubeconfig, or run in a pod with a service account", ErrNoConfig)
	}
	return nil, fmt.Errorf("%w: %s: %w", ErrBadConfig, s, err)
}

// PluginEnv is what a plugin process's environment gets so that it reaches
// the cluster s names: KUBECONFIG for the file, EnvContext for the context.
// Nothing for a zero Source: the plugin then finds the configuration as
// kubectl would, from the environment it inherits.
func (s Source) PluginEnv() []string {
	var env []string
	if s.Path != "" {
		env = append(env, "KUBECONFIG="+s.Path)
	}
	if s.Context != "" {
		env = append(env, EnvContext+"="+s.Context)
	}
	return env
}
