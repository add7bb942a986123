package probes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/chaos-run/chaos/experiments"
)

// outputGrace is how long a probe waits for output still held open by a
// process outside its group after the command exited.
const outputGrace = time.Second

// maxOutput is how much of each of a command's stdout and stderr a probe
// keeps unless its maxResponse says otherwise.
const maxOutput = experiments.DefaultMaxResponse

type execProber struct {
	spec *experiments.ExecProbe
	// maxOutput is the probe's maxResponse; zero means maxOutput.
	maxOutput experiments.ByteSize
}

// capResponse implements responseCapper.
func (p *execProber) capResponse(n experiments.ByteSize) { p.maxOutput = n }

// newExecProber is the exec kind's Constructor.
func newExecProber(p *experiments.Probe) (Prober, error) { return &execProber{spec: p.Exec}, nil }

// Probe runs the command once. It runs in its own process group, and when
// the probe's time is up the whole group is killed: a probe that hangs must
// leave no process behind, including any its command started. The output
// goes through pipes the probe reads itself, so that the command's own exit
// is seen when it happens, even if something it started still holds the
// output open (that leftover is killed with the group).
func (p *execProber) Probe(ctx context.Context) experiments.Observation {
	o := experiments.ExecObservation{ExitCode: -1}
	cmd := exec.CommandContext(ctx, p.spec.Command[0], p.spec.Command[1:]...)
	cmd.Env = os.Environ()
	for k, v := range p.spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v.Reveal())
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	limit := p.maxOutput
	if limit <= 0 {
		limit = maxOutput
	}
	// Each output has its own buffer and its own reader goroutine, so each
	// has its own record of whether it was cut.
	cut := [2]bool{}
	var readers sync.WaitGroup
	var readEnds []*os.File
	for i, out := range []struct {
		set func(*os.File)
		buf *bytes.Buffer
	}{
		{func(f *os.File) { cmd.Stdout = f }, &stdout},
		{func(f *os.File) { cmd.Stderr = f }, &stderr},
	} {
		r, w, err := os.Pipe()
		if err != nil {
			o.Error = "create pipe: " + err.Error()
			return o
		}
		out.set(w)
		defer func() { _ = w.Close() }()
		defer func() { _ = r.Close() }()
		readEnds = append(readEnds, r)
		readers.Go(func() { _, _ = io.Copy(&limitedBuffer{b: out.buf, n: int(limit), cut: &cut[i]}, r) })
	}
	start := time.Now()
	err := cmd.Start()
	// The parent's copies of the write ends must go now, or the readers
	// would wait for this process too.
	_ = cmd.Stdout.(*os.File).Close()
	_ = cmd.Stderr.(*os.File).Close()
	if err == nil {
		err = cmd.Wait()
	}
	o.Duration = time.Since(start)
	// The group may have members left (children of a command that
	// exited); they belong to the probe, not to the system. Once they are
	// gone, nothing holds the pipes and the readers finish.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A descendant that left the group (setsid) could hold the pipes open
	// for ever; its output is not worth waiting for.
	read := make(chan struct{})
	go func() { readers.Wait(); close(read) }()
	select {
	case <-read:
	case <-time.After(outputGrace):
		for _, r := range readEnds {
			_ = r.Close()
		}
		<-read
	}
	o.Stdout, o.Stderr = stdout.String(), stderr.String()
	o.Truncated = cut[0] || cut[1]
	var exitErr *exec.ExitError
	switch {
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
	return o
}

// limitedBuffer keeps the first n bytes and discards the rest, so a chatty
// command cannot fill memory; cut says that something was discarded. The
// rest is still read, so the command is not blocked on a full pipe and its
// exit code still counts.
type limitedBuffer struct {
	b   *bytes.Buffer
	n   int
	cut *bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	room := l.n - l.b.Len()
	if room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	if len(p) > max(room, 0) {
		*l.cut = true
	}
	return len(p), nil
}
