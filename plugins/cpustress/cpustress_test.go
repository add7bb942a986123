package cpustress_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/internal/proctest"
	"github.com/chaos-run/chaos/plugins/cpustress"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/plugins/sdk/sdktest"
)

var host = sdk.Target{Name: "node", Kind: sdk.KindHost, Host: &sdk.HostTarget{}}

func params(s string) json.RawMessage { return json.RawMessage(s) }

// TestConformance runs the sdk conformance suite against cpustress on the
// host. The fault is seen from outside, in /proc: workers of this process
// exist and use CPU while it is in effect, and none is left when it is not.
func TestConformance(t *testing.T) {
	sdktest.Run(t, cpustress.New(), sdktest.Case{
		Request: func(*testing.T) sdk.Request {
			return sdk.Request{RunID: "test", Target: host, Params: params(`{"load":30,"workers":1}`)}
		},
		Invalid: map[string]sdk.Request{
			"no load":          {Target: host, Params: params(`{}`)},
			"load 0":           {Target: host, Params: params(`{"load":0}`)},
			"load past 100":    {Target: host, Params: params(`{"load":101}`)},
			"fractional load":  {Target: host, Params: params(`{"load":50.5}`)},
			"no workers":       {Target: host, Params: params(`{"load":50,"workers":0}`)},
			"workers some":     {Target: host, Params: params(`{"load":50,"workers":"some"}`)},
			"bad ramp":         {Target: host, Params: params(`{"load":50,"ramp":"soon"}`)},
			"ramp past 1h":     {Target: host, Params: params(`{"load":50,"ramp":"2h"}`)},
			"unknown param":    {Target: host, Params: params(`{"load":50,"laod":50}`)},
			"endpoint target":  {Target: sdk.Target{Name: "e", Kind: sdk.KindEndpoint, Endpoint: &sdk.EndpointTarget{Listen: "127.0.0.1:1", Upstream: "127.0.0.1:2"}}, Params: params(`{"load":50}`)},
			"no such process":  {Target: processTarget(sdk.ProcessTarget{PID: deadPID(t)}), Params: params(`{"load":50}`)},
			"no such name":     {Target: processTarget(sdk.ProcessTarget{Name: "no-such-process-x"}), Params: params(`{"load":50}`)},
			"no such cgroup":   {Target: processTarget(sdk.ProcessTarget{Cgroup: "/no/such/cgroup"}), Params: params(`{"load":50}`)},
			"workers past max": {Target: host, Params: params(`{"load":50,"workers":100000}`)},
		},
		Fresh: func() sdk.Fault { return cpustress.New() },
		Check: func(t *testing.T, active bool) {
			if !active {
				require.Empty(t, workersOf(t, os.Getpid()), "no worker may be left when the fault is not in effect")
				return
			}
			ws := workersOf(t, os.Getpid())
			require.NotEmpty(t, ws, "a worker must run while the fault is in effect")
			before := proctest.CPU(ws...)
			require.Eventually(t, func() bool { return proctest.CPU(ws...) > before }, 30*time.Second, 10*time.Millisecond, "the workers must use CPU while the fault is in effect")
		},
	})
}

func processTarget(p sdk.ProcessTarget) sdk.Target {
	return sdk.Target{Name: "svc", Kind: sdk.KindProcess, Process: &p}
}

// deadPID is a pid no process has: that of a child that has been reaped.
func deadPID(t *testing.T) int {
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	require.NoError(t, err)
	_, err = p.Wait()
	require.NoError(t, err)
	return p.Pid
}

// workersOf lists the live cpustress workers whose parent is ppid, from
// /proc (argv[0] is their marker).
func workersOf(t *testing.T, ppid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.HasPrefix(cmd, []byte("chaos-cpustress-worker\x00")) {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if f[0] == "Z" || f[0] == "X" {
			continue // dead, not yet reaped: it burns nothing
		}
		if parent, _ := strconv.Atoi(f[1]); ppid == 0 || parent == ppid {
			out = append(out, pid)
		}
	}
	return out
}
