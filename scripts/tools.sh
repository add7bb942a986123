#!/usr/bin/env bash
# Installs the tools the Makefile uses into .cache/bin, pinned, idempotently.
# Go tools come from the Go module proxy; protoc (for `make generate` only)
# from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOBIN="$PWD/.cache/bin"
export GOFLAGS=-mod=mod
mkdir -p "$GOBIN"

install() { # name module@version
  local stamp="$GOBIN/.$1.version"
  if [ -x "$GOBIN/$1" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$2" ]; then return; fi
  echo "installing $2" >&2
  (cd "$(mktemp -d)" && go install "$2")
  echo "$2" > "$stamp"
}

install staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2
install protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
install protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0

if ! command -v protoc >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing protobuf-compiler" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
  else
    echo "note: protoc not found; only 'make generate' needs it (Debian: protobuf-compiler)" >&2
  fi
fi
