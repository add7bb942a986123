#!/usr/bin/env bash
# `make bench`: every benchmark next to its anchor in the same run, printed
# as ratios. BENCHMARKS.md records what this printed and on which machine.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
out=.cache/bench.txt
go test -run '^$' -bench . -count 5 ./... | tee "$out"

# ratio NAME ANCHOR: median ns/op of NAME over median ns/op of ANCHOR.
ratio() {
  local a b
  a=$(awk -v n="$1" '$1 ~ "^"n"(-[0-9]+)?$" {print $3}' "$out" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  b=$(awk -v n="$2" '$1 ~ "^"n"(-[0-9]+)?$" {print $3}' "$out" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  awk -v a="$a" -v b="$b" -v n="$1" -v m="$2" 'BEGIN {printf "%-45s %10.0f ns/op  vs %-35s %10.0f ns/op  ratio %.2fx\n", n, a, m, b, a/b}'
}
echo
echo "ratios (median of 5):"
ratio BenchmarkRoundTrip/proxy BenchmarkRoundTrip/direct
ratio BenchmarkValidate1000 BenchmarkYAMLUnmarshal1000

# `chaos validate` on 1,000 files (issue 3: goal under 1 s), the real binary:
# offline (parse, validate, compile), and asking the latency plugin too.
files=$(mktemp -d)
trap 'rm -rf "$files"' EXIT
examples=(experiments/examples/*.yaml)
for i in $(seq 0 999); do cp "${examples[$((i % ${#examples[@]}))]}" "$files/e$i.yaml"; done
for mode in --offline ""; do
  start=$(date +%s%N)
  CATALOG_TOKEN=x PROMETHEUS_TOKEN=x REDIS_PASSWORD=x bin/chaos validate $mode "$files"/*.yaml >/dev/null
  echo "chaos validate ${mode:-(plugins)} on 1000 files: $(( ($(date +%s%N) - start) / 1000000 )) ms"
done

# Time to safety (issue 4): budget checked on every observation vs a 1 s
# polling loop, same machine, same run; real latency plugin, real traffic.
echo
CHAOS_BENCH="${CHAOS_BENCH:-100}" go test -count=1 -run 'TestTimeToSafety' -v ./e2e/ | grep '^time-to-safety'

# SIGKILL points (issue 4): the runner killed at 200 points of its life;
# leftovers after lease TTL + 2 s and `chaos recover` (goal: 0).
echo
# The whole log is kept: a failure must be readable after the fact.
CHAOS_CRASH_POINTS="${CHAOS_CRASH_POINTS:-200}" go test -count=1 -run 'TestCrashLeavesNothing' -v -timeout 30m ./e2e/ | tee .cache/bench-crash.log | grep -E 'crash points|^(ok|FAIL|--- FAIL)'

# Plugin stops answering (issue 8): SIGSTOP the real latency plugin mid-fault
# and time until the fault is gone (the proxy's port refuses); goal <= lease
# TTL + 1 s.
echo
CHAOS_BENCH="${CHAOS_BENCH:-100}" go test -count=1 -run 'TestPluginStopToFaultGone' -v ./e2e/ | grep '^plugin-stop-to-fault-gone'

# CPU stress (issue 12): cpustress beside stress-ng --cpu-load (Debian; see
# scripts/deps.sh), one worker at 25/50/80/100 %, alone, with the other core
# busy, and with both cores saturated: MAE of 1-s samples, time to settle
# within ±5 points, time from revert to the workers gone. A few seconds per
# point (CHAOS_CPU_BENCH_SECONDS, 4 by default).
echo
CHAOS_CPU_BENCH=1 CHAOS_CPU_BENCH_SECONDS="${CHAOS_CPU_BENCH_SECONDS:-4}" go test -count=1 -run 'TestCPUStressBench' -v -timeout 20m ./plugins/cpustress/ | grep '^cpu-stress'

# Latency proxy side by side with toxiproxy (issue 13): pinned v2.12.0
# (`@latest` resolves to an older 2.5.0), installed once into .cache/bench
# for this benchmark only. Both proxies as processes of their own on the
# same echo and sink servers; figures and ratios in one run.
echo
toxi=.cache/bench/server
if [ ! -x "$toxi" ] || ! go version -m "$toxi" | grep -q "Shopify/toxiproxy/v2[[:space:]]*v2.12.0"; then
  GOBIN="$PWD/.cache/bench" go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0
fi
CHAOS_TOXIPROXY="$PWD/$toxi" go test -count=1 -run 'TestVersusToxiproxy' -v -timeout 20m ./plugins/latency/ | grep '^versus:'

# Scheduler (issue 15): 10,000 schedule entries (each its own experiment
# file, cron spread over the minute, ~167 fires a second, runs that do
# nothing) on the real clock for CHAOS_SCHED_BENCH_SECONDS (30 by default):
# resident memory and fire jitter (due → run started); goals <= 100 MB and
# p99 <= 10 ms.
echo
CHAOS_SCHED_BENCH=1 CHAOS_SCHED_BENCH_SECONDS="${CHAOS_SCHED_BENCH_SECONDS:-30}" go test -count=1 -run 'TestScheduleBench10k' -v ./engine/scheduler/ | grep '^schedule-10k'

# podkill (issue 11): kill 100 of 1,000 pods on the real test cluster, in
# the same run as `kubectl delete -l` (waiting, and --wait=false) and
# client-go at its default limits (QPS 5); goal podkill <= 0.5 s.
echo
[ -n "${CHAOS_CLUSTER_BIN:-}" ] || scripts/cluster.sh >&2
CHAOS_PODKILL_BENCH=1 CHAOS_CLUSTER_BIN="${CHAOS_CLUSTER_BIN:-$PWD/.cache/bin}" go test -count=1 -run 'TestPodkillBench100of1000' -v -timeout 15m ./plugins/podkill/ | grep '^podkill-100'
