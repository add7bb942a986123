#!/usr/bin/env bash
# Installs the Debian packages the tests use, idempotently: a real
# Prometheus for the prometheus probe's tests, stress-ng, which `make bench`
# runs beside the cpustress plugin (issue 12), tmux (a real terminal for the
# live view's test) and Chromium, which the HTML report's test uses to
# screenshot the report headless. Nothing is started here: each
# test starts what it needs on a free loopback port and stops it.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v stress-ng >/dev/null 2>&1 || need+=(stress-ng)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The scheduler asks a real Alertmanager for open incidents (issue 15).
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${need[*]} (Debian packages); tests that need them will say so and skip" >&2
  exit 0
fi
echo "installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# --no-install-recommends: the server binary is all the tests need; the
# package's own service is not started in a container without systemd.
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
