package probes_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/probes"
)

// Without a kubeconfig and outside a pod, a kubernetes probe cannot be
// built: the run must refuse before anything is injected, saying why. (The
// probe reading a real Deployment is tested in e2e/podkill_test.go against
// the test cluster.)
func TestKubernetesProbeNeedsAConfiguration(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KUBECONFIG", filepath.Join(dir, "missing"))
	t.Setenv("HOME", dir)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	_, err := probes.New("deploy", parseProbe(t, "{kubernetes: {deployment: shop/front}}"))
	require.ErrorIs(t, err, probes.ErrNoKubeconfig, "no kubeconfig and no service account: the probe cannot be built")
}
