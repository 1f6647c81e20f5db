#!/usr/bin/env bash
# Prints the path of the wasmtime CLI the edge tests serve the edge component with, installing
# it first if it is not there: `cargo install wasmtime-cli` of the host's wasmtime version
# (about 18 minutes on 2 cores), into a cache outside the clone keyed by that version
# ($EDGETHUMB_TOOLS_CACHE, default ~/.cache/edgethumb). Install output goes to stderr.
set -euo pipefail
version=48.0.8
root="${EDGETHUMB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgethumb}/wasmtime-cli-$version"
bin="$root/bin/wasmtime"
if ! "$bin" --version 2>/dev/null | grep -q "^wasmtime $version"; then
    echo "installing wasmtime-cli $version into $root (about 18 minutes on 2 cores)" >&2
    cargo install --locked wasmtime-cli --version "$version" --root "$root" >&2
fi
echo "$bin"
