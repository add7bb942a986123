package cpustress

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// Errors of a target that cannot be stressed; Validate says them as the
// target's problem, so the run is invalid before anything starts.
var (
	// ErrNoProcess means the target process does not exist (or no longer).
	ErrNoProcess = errors.New("no such process")
	// ErrAmbiguous means a process name matches more than one process.
	ErrAmbiguous = errors.New("more than one process has that name")
	// ErrNoCgroup means a target cgroup is not in any cpu hierarchy.
	ErrNoCgroup = errors.New("no such cgroup")
	// ErrCannotJoin means the plugin may not put a process in the cgroup.
	ErrCannotJoin = errors.New("cannot join the cgroup")
	// ErrWrongTarget means the target is of a kind cpustress does not take.
	ErrWrongTarget = errors.New("cpustress needs a host or process target")
)

// cpuControllers are the v1 controllers whose cgroups the workers join: the
// cpu quota and weight, its accounting, and the CPUs the target may use.
var cpuControllers = []string{"cpu", "cpuacct", "cpuset"}

// hierarchy is a mounted cgroup hierarchy that has a say in CPU.
type hierarchy struct {
	// controllers are the v1 controllers bound to it (cpu, cpuacct, ...);
	// empty for the v2 (unified) hierarchy.
	controllers []string
	mount       string // where it is mounted
	root        string // the cgroup the mount shows as its root
}

func (h hierarchy) name() string {
	if len(h.controllers) == 0 {
		return "v2"
	}
	return strings.Join(h.controllers, ",")
}

// cgroup is one cgroup the workers join.
type cgroup struct {
	h    hierarchy
	path string // within the hierarchy, "/a/b"
}

func (c cgroup) dir() string {
	rel := strings.TrimPrefix(c.path, c.h.root)
	if c.h.root == "/" {
		rel = c.path
	}
	return filepath.Join(c.h.mount, rel)
}

func (c cgroup) String() string { return c.h.name() + ":" + c.path }

// placement is what a target means now: the thing for locks and the
// ledger, and the cgroups the workers join (none for the host).
type placement struct {
	thing   sdk.Resolved
	cgroups []cgroup
}

// cpuHierarchies reads /proc/self/mountinfo for the hierarchies that have a
// say in CPU: every v1 hierarchy with a cpu controller, and the v2 one when
// no v1 hierarchy holds the cpu controller (then v2 does).
func cpuHierarchies() ([]hierarchy, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var v1 []hierarchy
	var v2 *hierarchy
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 3 {
			continue
		}
		root, mount := fields[3], fields[4]
		switch tail[0] {
		case "cgroup2":
			if v2 == nil {
				v2 = &hierarchy{mount: mount, root: root}
			}
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(tail[2], ",") {
				if slices.Contains(cpuControllers, o) {
					ctrls = append(ctrls, o)
				}
			}
			key := strings.Join(ctrls, ",")
			if len(ctrls) == 0 || seen[key] {
				continue
			}
			seen[key] = true
			v1 = append(v1, hierarchy{controllers: ctrls, mount: mount, root: root})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	for _, h := range v1 {
		if slices.Contains(h.controllers, "cpu") {
			return v1, nil
		}
	}
	if v2 != nil {
		return append(v1, *v2), nil
	}
	if len(v1) == 0 {
		return nil, errors.New("no cgroup hierarchy with a cpu controller is mounted")
	}
	return v1, nil
}

// locate finds what a target means now, reading /proc and the cgroup file
// systems only.
func locate(t sdk.Target) (placement, error) {
	switch {
	case t.Kind == sdk.KindHost:
		host, _ := os.Hostname()
		return placement{thing: sdk.Resolved{Key: "host:" + host, Kind: sdk.KindHost, Name: fmt.Sprintf("host %s (%d CPUs)", host, runtime.NumCPU())}}, nil
	case t.Kind == sdk.KindProcess && t.Process != nil:
	default:
		return placement{}, fmt.Errorf("%w: %s is a %s target", ErrWrongTarget, t.Name, t.Kind)
	}
	hs, err := cpuHierarchies()
	if err != nil {
		return placement{}, err
	}
	p := t.Process
	if p.Cgroup != "" {
		return locateCgroup(hs, p.Cgroup)
	}
	pid := p.PID
	if pid == 0 {
		if pid, err = pidByName(p.Name); err != nil {
			return placement{}, err
		}
	}
	return locatePID(hs, pid)
}

// locateCgroup is a cgroup named by its path: the workers join it in every
// cpu hierarchy that has it; the one holding the cpu controller must.
func locateCgroup(hs []hierarchy, path string) (placement, error) {
	path = "/" + strings.Trim(filepath.Clean("/"+path), "/")
	var pl placement
	var looked []string
	for _, h := range hs {
		c := cgroup{h: h, path: path}
		looked = append(looked, c.dir())
		if _, err := os.Stat(c.dir()); err != nil {
			if ownsCPU(h) {
				return placement{}, fmt.Errorf("%w: cgroup %s is not in the cpu hierarchy (%s: %w)", ErrNoCgroup, path, c.dir(), err)
			}
			continue
		}
		if err := joinable(c); err != nil {
			return placement{}, err
		}
		pl.cgroups = append(pl.cgroups, c)
	}
	if len(pl.cgroups) == 0 {
		return placement{}, fmt.Errorf("%w: cgroup %s (looked in %s)", ErrNoCgroup, path, strings.Join(looked, ", "))
	}
	pl.thing = sdk.Resolved{Key: "cgroup:" + path, Kind: "cgroup", Name: "cgroup " + path + " (" + describeCgroups(pl.cgroups) + ")"}
	return pl, nil
}

// locatePID is a process: its workers join the process's cgroups in each
// cpu hierarchy. The key is pid and start time, so a recycled pid is
// another thing; it covers the cgroup, so two runs do not stress one cgroup
// through two of its processes.
func locatePID(hs []hierarchy, pid int) (placement, error) {
	start, comm, err := procStart(pid)
	if err != nil {
		return placement{}, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return placement{}, fmt.Errorf("%w: pid %d: %w", ErrNoProcess, pid, err)
	}
	var pl placement
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrls := strings.Split(parts[1], ",")
		for _, h := range hs {
			v2 := len(h.controllers) == 0 && parts[0] == "0" && parts[1] == ""
			if !v2 && (len(h.controllers) == 0 || !slices.Contains(ctrls, h.controllers[0])) {
				continue
			}
			c := cgroup{h: h, path: parts[2]}
			if err := joinable(c); err != nil {
				return placement{}, fmt.Errorf("pid %d (%s): %w", pid, comm, err)
			}
			pl.cgroups = append(pl.cgroups, c)
		}
	}
	pl.thing = sdk.Resolved{
		Key:  fmt.Sprintf("process:%d:%d", pid, start),
		Kind: sdk.KindProcess,
		Name: fmt.Sprintf("pid %d (%s) in %s", pid, comm, describeCgroups(pl.cgroups)),
	}
	for _, c := range pl.cgroups {
		if ownsCPU(c.h) && c.path != "/" {
			pl.thing.Covers = append(pl.thing.Covers, "cgroup:"+c.path)
		}
	}
	return pl, nil
}

func ownsCPU(h hierarchy) bool {
	return len(h.controllers) == 0 || slices.Contains(h.controllers, "cpu")
}

func describeCgroups(cs []cgroup) string {
	if len(cs) == 0 {
		return "no cpu cgroup"
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

// joinable checks, changing nothing, that the plugin may put a process in
// the cgroup: its cgroup.procs is there and writable by this process, and
// (v2) it is not an inner cgroup with controllers enabled for its children,
// which the kernel keeps free of processes.
func joinable(c cgroup) error {
	procs := filepath.Join(c.dir(), "cgroup.procs")
	if err := unix.Faccessat(unix.AT_FDCWD, procs, unix.W_OK, unix.AT_EACCESS); err != nil {
		return fmt.Errorf("%w %s: %s: %w", ErrCannotJoin, c, procs, err)
	}
	if len(c.h.controllers) == 0 && c.path != "/" {
		b, err := os.ReadFile(filepath.Join(c.dir(), "cgroup.subtree_control"))
		if err == nil && strings.TrimSpace(string(b)) != "" {
			return fmt.Errorf("%w %s: it enables controllers for its children (%s), so the kernel keeps processes out of it; name a leaf cgroup", ErrCannotJoin, c, strings.TrimSpace(string(b)))
		}
	}
	return nil
}

// procStart reads a process's start time (clock ticks since boot, field 22
// of /proc/PID/stat) and its name.
func procStart(pid int) (uint64, string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", fmt.Errorf("%w: pid %d", ErrNoProcess, pid)
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return 0, "", fmt.Errorf("read /proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 20 {
		return 0, "", fmt.Errorf("read /proc/%d/stat: unexpected format", pid)
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return 0, "", fmt.Errorf("%w: pid %d has exited", ErrNoProcess, pid)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	return start, s[open+1 : end], nil
}

// pidByName finds the one live process whose /proc/PID/comm is name.
func pidByName(name string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		if _, _, err := procStart(pid); err == nil {
			pids = append(pids, pid)
		}
	}
	switch len(pids) {
	case 0:
		return 0, fmt.Errorf("%w: no process is named %q", ErrNoProcess, name)
	case 1:
		return pids[0], nil
	}
	return 0, fmt.Errorf("%w: %q names %d processes (pids %v); name one by pid, or their cgroup", ErrAmbiguous, name, len(pids), pids)
}
