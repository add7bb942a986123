package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/chaos-run/chaos/experiments"
)

// maxOutput is how much of a command's stdout and stderr a probe keeps.
const maxOutput = 64 << 10

type execProber struct{ spec *experiments.ExecProbe }

func newExecProber(spec *experiments.ExecProbe) *execProber { return &execProber{spec: spec} }

// Probe runs the command once. It runs in its own process group, and when
// the probe's time is up the whole group is killed: a probe that hangs must
// leave no process behind, including any its command started.
func (p *execProber) Probe(ctx context.Context) experiments.Observation {
	cmd := exec.CommandContext(ctx, p.spec.Command[0], p.spec.Command[1:]...)
	cmd.Env = os.Environ()
	for k, v := range p.spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Children that inherited the pipes could keep Wait waiting; after the
	// kill, give up on their output quickly.
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedBuffer{b: &stdout, n: maxOutput}
	cmd.Stderr = &limitedBuffer{b: &stderr, n: maxOutput}
	start := time.Now()
	err := cmd.Run()
	o := experiments.ExecObservation{
		Duration: time.Since(start), Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: -1,
	}
	var exitErr *exec.ExitError
	switch {
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil:
		// The command exited, but something it started still holds its
		// output open. Its exit code is the answer; the leftover is killed
		// below with the rest of the group.
		o.OK, o.ExitCode = true, cmd.ProcessState.ExitCode()
	case ctx.Err() != nil:
		// Killed because time ran out: the exit code says nothing.
		o.Error = describeErr(ctx, ctx.Err())
	case errors.As(err, &exitErr):
		o.OK, o.ExitCode = true, exitErr.ExitCode()
	case err != nil:
		o.Error = fmt.Sprintf("run %s: %v", p.spec.Command[0], err)
	default:
		o.OK, o.ExitCode = true, 0
	}
	// The group may have members left if the command exited and left
	// children behind; they belong to the probe, not to the system.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	return o
}

// limitedBuffer keeps the first n bytes and discards the rest, so a chatty
// command cannot fill memory.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
