#!/usr/bin/env bash
# `make demo`: starts the bundled demo service, runs every example experiment
# written for it (experiments/examples/demo-*.yaml), prints each verdict and
# where its report is, stops what it started, and exits 0 when every verdict
# is the one the example expects (its `demo.expect` label). The intercept
# examples (demo-intercept*.yaml) write nftables rules, which needs root:
# they run only as root, and are skipped with a note otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
out=reports-out
mkdir -p "$out"

bin/demo-shop >"$out/demo-shop.out" 2>"$out/demo-shop.log" &
demo=$!
trap 'kill "$demo" 2>/dev/null; wait "$demo" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q '^ready' "$out/demo-shop.out" 2>/dev/null && break
  kill -0 "$demo" 2>/dev/null || { echo "demo-shop did not start:"; cat "$out/demo-shop.log"; exit 1; }
  sleep 0.1
done
grep -q '^ready' "$out/demo-shop.out" || { echo "demo-shop did not get ready"; exit 1; }
echo "demo-shop is up: $(cat "$out/demo-shop.out")"
echo

status=0
for file in experiments/examples/demo-*.yaml; do
  name=$(basename "$file" .yaml)
  expect=$(sed -n 's/^ *demo.expect: *//p' "$file")
  case "$name" in
  demo-intercept*)
    if [ "$(id -u)" != 0 ]; then
      echo "== $name: skipped (intercept mode writes nftables rules, which needs root; run make demo as root to see it)"
      echo
      continue
    fi
    if ! command -v curl >/dev/null; then
      echo "== $name: skipped (its probe runs curl, which is not installed)"
      echo
      continue
    fi
    ;;
  esac
  echo "== $name (expected: $expect)"
  set +e
  bin/chaos run --log-level warn --report-dir "$out/$name" "$file"
  code=$?
  set -e
  verdict=$(sed -n 's/^  "verdict": "\(.*\)",$/\1/p' "$out/$name/report.json" 2>/dev/null || true)
  if [ "$verdict" = "$expect" ]; then
    echo "-> $verdict (exit $code), as expected"
  else
    echo "-> $verdict (exit $code), but the example expects $expect"
    status=1
  fi
  echo
done
echo "Reports (Markdown for the owners, JSON for machines) are under $out/."
exit $status
