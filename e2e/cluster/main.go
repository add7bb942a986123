// Command test-cluster runs a small, real Kubernetes control plane for the
// chaos tests: embedded etcd, kube-apiserver and kube-controller-manager
// from k8s.io/kubernetes, all on loopback. Nodes and kubelets are not part
// of it; the tests run kwok beside it for those.
//
// It is one binary that re-executes itself for the two Kubernetes
// components (each installs its own signal handling and global flag and
// metric registries, so they cannot share a process), and supervises them:
//
//	test-cluster [-dir DIR] [-port N] [-kubeconfig FILE]
//
// It prints "apiserver https://127.0.0.1:PORT", "kubeconfig FILE" and then
// "ready" on stdout once the API server answers /readyz and the controller
// manager is started. It stops everything on SIGTERM or SIGINT, and also
// when its parent process dies, so a killed test leaves nothing running.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

// The controllers a Deployment, a StatefulSet and a DaemonSet need to keep
// their pods, plus the service account ones so that pods (and tokens) can
// be created in new namespaces. There is no scheduler: test pods name the
// kwok node in spec.nodeName, and the DaemonSet controller keeps a
// template's nodeName, so DaemonSet pods need none either.
const controllers = "replicaset,deployment,statefulset,daemonset,serviceaccount-token,serviceaccount,namespace,garbagecollector"

var (
	errChildExited = errors.New("component exited")
	errNotReady    = errors.New("api server not ready")
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "kube-apiserver", "kube-controller-manager":
			name := os.Args[1]
			os.Args = os.Args[1:]
			watchParent(func() { _ = syscall.Kill(os.Getpid(), syscall.SIGTERM) })
			if name == "kube-apiserver" {
				os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
			}
			os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "test-cluster:", err)
		stop()
		os.Exit(1)
	}
}

// watchParent makes the process die with its parent: the kernel sends
// SIGTERM when the parent goes (PR_SET_PDEATHSIG), and a poll of the parent
// pid covers the cases the kernel signal misses (the parent thread that
// started us exiting before the process, or the parent dying before the
// prctl call).
func watchParent(gone func()) {
	ppid := os.Getppid()
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
	go func() {
		for {
			if os.Getppid() != ppid {
				gone()
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("test-cluster", flag.ContinueOnError)
	dir := fs.String("dir", "", "data directory (default: a temporary one, removed on exit)")
	port := fs.Int("port", 0, "API server port on 127.0.0.1 (0: a free one)")
	kubeconfig := fs.String("kubeconfig", "", "where to write the admin kubeconfig (default: DIR/admin.kubeconfig)")
	verbosity := fs.Int("v", 0, "log verbosity of the Kubernetes components")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchParent(cancel)

	if *dir == "" {
		tmp, err := os.MkdirTemp("", "test-cluster-")
		if err != nil {
			return fmt.Errorf("make data directory: %w", err)
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("make data directory: %w", err)
	}
	if *port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		*port = p
	}
	if *kubeconfig == "" {
		*kubeconfig = *dir + "/admin.kubeconfig"
	}
	server := "https://127.0.0.1:" + strconv.Itoa(*port)

	files, err := writeCredentials(*dir, server, *kubeconfig)
	if err != nil {
		return err
	}

	etcdURL, closeEtcd, err := startEtcd(ctx, *dir+"/etcd")
	if err != nil {
		return err
	}
	defer closeEtcd()

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	v := "--v=" + strconv.Itoa(*verbosity)

	api, err := startChild(self, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(*port),
		"--cert-dir="+*dir+"/apiserver",
		"--tls-cert-file="+files.serverCert,
		"--tls-private-key-file="+files.serverKey,
		"--client-ca-file="+files.caCert,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+files.saPub,
		"--service-account-signing-key-file="+files.saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		v,
	)
	if err != nil {
		return err
	}
	defer api.stop()

	if err := waitReady(ctx, server, files, api); err != nil {
		return err
	}

	kcm, err := startChild(self, "kube-controller-manager",
		"--kubeconfig="+*kubeconfig,
		"--controllers="+controllers,
		"--leader-elect=false",
		"--secure-port=0",
		"--service-account-private-key-file="+files.saKey,
		"--root-ca-file="+files.caCert,
		"--concurrent-deployment-syncs=5",
		"--concurrent-replicaset-syncs=5",
		"--profiling=false",
		v,
	)
	if err != nil {
		return err
	}
	defer kcm.stop()

	fmt.Printf("apiserver %s\nkubeconfig %s\nready\n", server, *kubeconfig)

	select {
	case <-ctx.Done():
		return nil
	case <-api.done:
		return fmt.Errorf("kube-apiserver: %w: %w", errChildExited, api.err)
	case <-kcm.done:
		return fmt.Errorf("kube-controller-manager: %w: %w", errChildExited, kcm.err)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// child is one re-executed Kubernetes component.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startChild(self, name string, args ...string) (*child, error) {
	cmd := exec.Command(self, append([]string{name}, args...)...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	// The kernel stops the child if this process dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// stop asks the component to shut down and kills it if it has not within
// a bounded wait.
func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}
