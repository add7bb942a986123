package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/kubeconfig"
	"github.com/chaos-run/chaos/probes"
	"github.com/chaos-run/chaos/reports"
)

// kubectl's flags, with kubectl's meaning: --kubeconfig beats $KUBECONFIG,
// which beats ~/.kube/config; with none, the in-cluster service account.
// They reach the kubernetes probe directly and out-of-process plugins
// (podkill) through their environment (kubeconfig.Source.PluginEnv), where a
// fault's own `with: {kubeconfig, context}` wins.
var (
	kubeconfigFlag = &cli.StringFlag{
		Name:  "kubeconfig",
		Usage: "kubeconfig `FILE` for the kubernetes probe and Kubernetes faults (default: $KUBECONFIG, else ~/.kube/config, else the in-cluster service account)",
	}
	kubeContextFlag = &cli.StringFlag{
		Name:  "context",
		Usage: "kubeconfig `CONTEXT` to use (default: the kubeconfig's current context)",
	}
)

// kubeSource reads --kubeconfig and --context. When either is given, the
// configuration is loaded now: a missing or unreadable file or an unknown
// context is one error before any file is read, any plugin started or
// anything injected, not a probe or plugin failing later on its own.
func kubeSource(c *cli.Context) (kubeconfig.Source, error) {
	src := kubeconfig.Source{Path: c.String(kubeconfigFlag.Name), Context: c.String(kubeContextFlag.Name)}
	if src.IsZero() {
		return src, nil
	}
	if _, err := src.Load(); err != nil {
		return src, &exitError{code: reports.Invalid.ExitCode(), msg: kubeFlagsMessage(src) + ": " + err.Error() + "; nothing was run"}
	}
	return src, nil
}

func kubeFlagsMessage(src kubeconfig.Source) string {
	switch {
	case src.Path != "" && src.Context != "":
		return fmt.Sprintf("--kubeconfig %s --context %s", src.Path, src.Context)
	case src.Path != "":
		return "--kubeconfig " + src.Path
	}
	return "--context " + src.Context
}

// proberWith is the probe constructor every command hands the engine: the
// probe kinds this version runs (package probes), the kubernetes probe on
// src's cluster (the zero Source is kubectl's default order).
func proberWith(src kubeconfig.Source) func(name string, p *experiments.Probe) (engine.Prober, error) {
	reg := probes.Builtin()
	reg[experiments.ProbeKubernetes] = probes.KubernetesProber(src)
	return func(name string, p *experiments.Probe) (engine.Prober, error) {
		pr, err := reg.New(name, p)
		if err != nil {
			return nil, err
		}
		return pr, nil
	}
}

// pluginCommandWith gives every plugin process src's cluster through its
// environment (KUBECONFIG and kubeconfig.EnvContext, after what it would
// inherit, so they win over the runner's own environment).
func pluginCommandWith(src kubeconfig.Source, command func(name string) (*exec.Cmd, error)) func(name string) (*exec.Cmd, error) {
	env := src.PluginEnv()
	if len(env) == 0 {
		return command
	}
	return func(name string) (*exec.Cmd, error) {
		cmd, err := command(name)
		if err != nil {
			return nil, err
		}
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(cmd.Env, env...)
		return cmd, nil
	}
}
