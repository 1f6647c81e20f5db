#!/usr/bin/env bash
# Installs everything the service's build and its tests need on a fresh machine (Debian with
# rustup, Node 20, Python 3.11 and PostgreSQL): the README's set-up step, which .ci/run runs
# too, so the two cannot drift. Each step is skipped when what it installs is there already.
set -euo pipefail
cd "$(dirname "$0")/.."

# rust-toolchain.toml lists wasm32-wasip2, but rustup 1.29 only installs listed targets when
# asked (host/build.rs would add it too; this makes the step visible in the log).
rustup toolchain install
rustup target add wasm32-wasip2

# apt packages: clang-14 and the wasi-libc headers compile libwebp's C for the component
# (.cargo/config.toml names them; host/build.rs needs them before clippy), and Debian's
# Chromium is the browser host/tests/browser.rs drives.
missing=()
command -v clang-14 >/dev/null && command -v llvm-ar-14 >/dev/null || missing+=(clang-14 llvm-14)
[ -f /usr/include/wasm32-wasi/stdlib.h ] || missing+=(wasi-libc)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm packages, exactly the lockfiles' trees: jco (host/tests/jco.rs, and the edge tests'
# second wasi:http runtime) and playwright-core (host/tests/browser.rs). --prefer-offline
# takes tarballs from ~/.npm's cache when it has them (each checked against the lockfile).
npm ci --prefix scripts/jco --prefer-offline --no-audit --no-fund
npm ci --prefix scripts/browser --prefer-offline --no-audit --no-fund

# The wasmtime CLI that serves the edge component (about 18 minutes on 2 cores, once): built
# into ~/.cache/edgethumb, keyed by version. The tests call the same script, so a missing
# cache never skips them.
scripts/wasmtime-cli.sh >/dev/null

# PostgreSQL for the PostgreSQL half of the suite (127.0.0.1:5432, user postgres, trust
# auth; EDGETHUMB_TEST_POSTGRES points elsewhere): started if it is installed and down.
if [ -z "${EDGETHUMB_TEST_POSTGRES:-}" ] && command -v pg_isready >/dev/null \
    && ! pg_isready -q -h 127.0.0.1 -p 5432 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 1
    done
fi
