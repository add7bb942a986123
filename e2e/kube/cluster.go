// Package kubetest starts the real Kubernetes test cluster for tests that
// need an API server: etcd, kube-apiserver and kube-controller-manager (the
// test-cluster binary built from the e2e/cluster module) plus kwok standing
// in for a node and its kubelet, all on free loopback ports.
//
// A package shares one cluster among its tests, started from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &cluster)) }
//
// The binaries are built by `make cluster` (scripts/cluster.sh) into
// .cache/bin. When they are missing the tests skip and say what to run;
// when CHAOS_CLUSTER_BIN is set (as `make test` and CI do) a cluster that
// cannot start fails the tests instead.
package kubetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// EnvBin names the directory holding test-cluster, kwok and kwok-stages/.
// Set, it also means "the cluster must run": a failure to start is a test
// failure, not a skip.
const EnvBin = "CHAOS_CLUSTER_BIN"

// NodeName is the kwok node every test pod can name in spec.nodeName; there
// is no scheduler in the test cluster.
const NodeName = "kwok-node-0"

var (
	// ErrNotBuilt: the binaries are not where the tests look for them.
	ErrNotBuilt = errors.New("test cluster not built")
	// ErrStart: a component did not come up or exited.
	ErrStart = errors.New("test cluster did not start")
)

// Generous limits: the machine is shared and a cold apiserver start on two
// busy cores can take tens of seconds. Nothing asserts these as speeds.
const (
	startLimit = 3 * time.Minute
	stopLimit  = 30 * time.Second
)

// Cluster is a running test cluster.
type Cluster struct {
	// Kubeconfig is the path of an admin kubeconfig for the cluster.
	Kubeconfig string
	// Server is the API server's https URL on 127.0.0.1.
	Server string
	// Config and Client talk to the cluster as admin.
	Config *rest.Config
	Client kubernetes.Interface
	// StartTime is how long Start took, from exec to the node being Ready.
	StartTime time.Duration

	dir     string
	cluster *proc
	kwok    *proc
}

// Binaries finds the test-cluster binary, kwok and the kwok stage files: in
// $CHAOS_CLUSTER_BIN, or else in the repository's .cache/bin. required
// says whether CHAOS_CLUSTER_BIN was set.
func Binaries() (dir string, required bool, err error) {
	dir, required = os.LookupEnv(EnvBin)
	if !required || dir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			return "", required, fmt.Errorf("%w: cannot locate the repository", ErrNotBuilt)
		}
		dir = filepath.Join(filepath.Dir(file), "..", "..", ".cache", "bin")
	}
	for _, name := range []string{"test-cluster", "kwok", "kwok-stages"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return dir, required, fmt.Errorf("%w: %s missing in %s (run `make cluster` or scripts/cluster.sh; a cold build takes ~15-20 minutes): %w",
				ErrNotBuilt, name, dir, err)
		}
	}
	return dir, required, nil
}

// Start starts a cluster and waits until the API answers, the kwok node is
// Ready and the default service account exists (so pods can be created).
// logs receives the components' output (a file, so a failure can show it).
func Start(ctx context.Context, binDir string, logs io.Writer) (*Cluster, error) {
	began := time.Now()
	dir, err := os.MkdirTemp("", "chaos-kube-")
	if err != nil {
		return nil, fmt.Errorf("make cluster directory: %w", err)
	}
	c := &Cluster{dir: dir, Kubeconfig: filepath.Join(dir, "admin.kubeconfig")}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()

	ctx, cancel := context.WithTimeout(ctx, startLimit)
	defer cancel()

	c.cluster, err = startProc(filepath.Join(binDir, "test-cluster"), logs,
		"-dir", filepath.Join(dir, "cluster"), "-kubeconfig", c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	if c.Server, err = c.cluster.waitReady(ctx); err != nil {
		return nil, err
	}

	c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	// Tests create and delete in bursts; client-go's default 5 QPS would
	// make the waits about the client, not the cluster.
	c.Config.QPS, c.Config.Burst = 200, 400
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, fmt.Errorf("make client: %w", err)
	}

	kwokArgs := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--manage-single-node=" + NodeName,
		"--node-ip=10.0.0.2",
		"--cidr=10.0.1.0/24",
		"--node-lease-duration-seconds=40",
	}
	stages, err := filepath.Glob(filepath.Join(binDir, "kwok-stages", "*.yaml"))
	if err != nil || len(stages) == 0 {
		return nil, fmt.Errorf("%w: no kwok stages in %s", ErrNotBuilt, binDir)
	}
	for _, s := range stages {
		kwokArgs = append(kwokArgs, "-c", s)
	}
	if c.kwok, err = startProc(filepath.Join(binDir, "kwok"), logs, kwokArgs...); err != nil {
		return nil, err
	}
	if err := c.createNode(ctx); err != nil {
		return nil, err
	}
	if err := c.waitUsable(ctx); err != nil {
		return nil, err
	}
	c.StartTime = time.Since(began)
	ok = true
	return c, nil
}

func (c *Cluster) createNode(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        NodeName,
		Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": NodeName, "kubernetes.io/os": "linux"},
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
	}}
	_, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create node %s: %w", NodeName, err)
	}
	return nil
}

// waitUsable waits for the node to be Ready (kwok is working) and the
// default service account to exist (the controller manager is working).
func (c *Cluster) waitUsable(ctx context.Context) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := c.exited(); err != nil {
			return false, err
		}
		node, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		if !NodeReady(node) {
			last = "node " + NodeName + " not Ready"
			return false, nil
		}
		if _, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			last = "service account default/default: " + err.Error()
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("%w: waiting for node and service account (last: %s): %w", ErrStart, last, err)
	}
	return nil
}

func (c *Cluster) exited() error {
	for _, p := range []*proc{c.cluster, c.kwok} {
		if p == nil {
			continue
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w: %s exited: %w", ErrStart, filepath.Base(p.cmd.Path), p.err)
		default:
		}
	}
	return nil
}

// NodeReady says whether a node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PodReady says whether a pod's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Stop stops kwok and the cluster (SIGTERM, then SIGKILL after a bounded
// wait) and removes the cluster's files.
func (c *Cluster) Stop() {
	for _, p := range []*proc{c.kwok, c.cluster} {
		if p != nil {
			p.stop()
		}
	}
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

// proc is one started binary.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	err   error
}

func startProc(path string, logs io.Writer, args ...string) (*proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(path), err)
	}
	// If the test binary dies without stopping it, the kernel does (and
	// test-cluster also watches its parent itself).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: start %s: %w", ErrStart, filepath.Base(path), err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 16), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if logs != nil {
				_, _ = fmt.Fprintln(logs, sc.Text())
			}
			select {
			case p.lines <- sc.Text():
			default: // nobody is reading any more
			}
		}
		close(p.lines)
		// Wait only after stdout is drained, as os/exec requires.
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitReady reads test-cluster's stdout until it says "ready", and returns
// the API server URL it printed.
func (p *proc) waitReady(ctx context.Context) (string, error) {
	var server string
	for {
		select {
		case line, open := <-p.lines:
			if !open {
				<-p.done
				return "", fmt.Errorf("%w: test-cluster exited before it was ready: %w", ErrStart, p.err)
			}
			if s, ok := strings.CutPrefix(line, "apiserver "); ok {
				server = s
			}
			if line == "ready" {
				if server == "" {
					return "", fmt.Errorf("%w: test-cluster said ready without an apiserver address", ErrStart)
				}
				return server, nil
			}
		case <-ctx.Done():
			return "", fmt.Errorf("%w: waiting for test-cluster: %w", ErrStart, ctx.Err())
		}
	}
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopLimit):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
