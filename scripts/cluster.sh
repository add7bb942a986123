#!/usr/bin/env bash
# Builds the real Kubernetes test cluster the e2e tests start (issue 11)
# into .cache/bin, once, and reuses it; a stamp beside each binary names
# what it was built from, so a version bump rebuilds it:
#   .cache/bin/test-cluster   etcd + kube-apiserver + kube-controller-manager
#                             (the separate module e2e/cluster)
#   .cache/bin/kwok           fake nodes and kubelets (sigs.k8s.io/kwok)
#   .cache/bin/kwok-stages/   the kwok stage definitions the tests pass with -c
# The tests find them through CHAOS_CLUSTER_BIN (the Makefile sets it) or
# in .cache/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
bin="$root/.cache/bin"
mkdir -p "$bin"

KWOK=sigs.k8s.io/kwok@v0.8.0

# The cluster binary is rebuilt when its module (go.mod, go.sum, sources)
# changes: the stamp is a hash of them.
cluster_stamp() {
  (cd e2e/cluster && cat go.mod go.sum ./*.go) | sha256sum | cut -d' ' -f1
}

built() { # binary stamp-file want
  [ -x "$1" ] && [ "$(cat "$2" 2>/dev/null)" = "$3" ]
}

want=$(cluster_stamp)
if ! built "$bin/test-cluster" "$bin/.test-cluster.version" "$want"; then
  echo "building the test cluster (k8s.io/kubernetes v1.37.2: etcd, kube-apiserver, kube-controller-manager) into .cache/bin/test-cluster" >&2
  echo "  a cold build takes ~15-20 minutes on 2 cores (~6 with the Go module cache warm); it is built once and reused" >&2
  start=$SECONDS
  (cd e2e/cluster && GOWORK=off GOFLAGS=-mod=mod go build -trimpath -o "$bin/test-cluster.tmp" .)
  mv "$bin/test-cluster.tmp" "$bin/test-cluster"
  echo "$want" > "$bin/.test-cluster.version"
  echo "  built test-cluster in $((SECONDS - start))s" >&2
fi

if ! built "$bin/kwok" "$bin/.kwok.version" "$KWOK" || [ ! -d "$bin/kwok-stages" ]; then
  echo "building kwok ($KWOK) into .cache/bin/kwok (~2 minutes cold)" >&2
  start=$SECONDS
  tmp=$(mktemp -d)
  (cd "$tmp" && GOBIN="$bin" GOFLAGS=-mod=mod go install "sigs.k8s.io/kwok/cmd/kwok@${KWOK#*@}")
  # kwok v0.8 refuses to start without stage definitions; its module ships
  # them (Apache-2.0, kwok's own files): copy the ones the tests use.
  dir=$(cd "$tmp" && go mod download -json "$KWOK" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$tmp"
  rm -rf "$bin/kwok-stages" && mkdir -p "$bin/kwok-stages"
  for f in node/fast/node-initialize node/heartbeat/node-heartbeat \
           pod/general/pod-ready pod/general/pod-complete pod/general/pod-delete; do
    cp "$dir/kustomize/stage/$f.yaml" "$bin/kwok-stages/"
  done
  chmod -R u+w "$bin/kwok-stages"
  echo "$KWOK" > "$bin/.kwok.version"
  echo "  built kwok in $((SECONDS - start))s" >&2
fi
