#!/usr/bin/env bash
# Run XQueue's whole test suite: THE one command, on a fresh machine or in CI.
#
#   scripts/test.sh [extra args for `cargo nextest run`]
#
# 1. installs the missing Debian build dependencies (rdkafka compiles librdkafka),
# 2. builds the local test images (scripts/build-images.sh; no registry is needed),
# 3. exports XQUEUE_REDIS_IMAGE, XQUEUE_KAFKA_IMAGE and XQUEUE_REQUIRE_DOCKER=1
#    (Docker-backed tests then fail loudly instead of skipping when Docker is missing),
# 4. runs `cargo nextest run --workspace --all-features --no-fail-fast "$@"`
#    (or `cargo test` when cargo-nextest is missing), then the doc tests.
# Both test steps run even if the first fails; the exit status is non-zero if any failed.
#
# XQUEUE_TEST_DRY_RUN=1 does everything but the cargo commands, which are only printed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n======== %s ========\n' "$*"; }
info() { printf '[test.sh] %s\n' "$*"; }
die() {
    printf '[test.sh] ERROR: %s\n' "$*" >&2
    exit 1
}

DRY_RUN=${XQUEUE_TEST_DRY_RUN:-0}
START=$SECONDS

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# ------------------------------------------------------------------------------------
section "Build dependencies (apt)"
APT_DEPS=(build-essential pkg-config zlib1g-dev libssl-dev)
missing=()
for pkg in "${APT_DEPS[@]}"; do
    status=$(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
    info "all present: ${APT_DEPS[*]}"
else
    info "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
        as_root apt-get update -q
    fi
    if ! as_root apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        info "install failed; refreshing package lists and retrying"
        as_root apt-get update -q
        as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi

# ------------------------------------------------------------------------------------
section "Rust toolchain"
if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
    export PATH=$HOME/.cargo/bin:$PATH
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found"
cargo --version
rustc --version
if cargo nextest --version >/dev/null 2>&1; then
    RUNNER=nextest
    cargo nextest --version | head -n1
else
    RUNNER=cargo-test
    info "cargo-nextest not found: falling back to 'cargo test'"
fi

# ------------------------------------------------------------------------------------
section "Test images"
bash scripts/build-images.sh
export XQUEUE_REDIS_IMAGE=${XQUEUE_REDIS_IMAGE:-xqueue-test/redis:7.0.15}
export XQUEUE_KAFKA_IMAGE=${XQUEUE_KAFKA_IMAGE:-xqueue-test/tansu:0.1.2}
export XQUEUE_REQUIRE_DOCKER=1
info "XQUEUE_REDIS_IMAGE=$XQUEUE_REDIS_IMAGE"
info "XQUEUE_KAFKA_IMAGE=$XQUEUE_KAFKA_IMAGE"
info "XQUEUE_REQUIRE_DOCKER=$XQUEUE_REQUIRE_DOCKER"

# ------------------------------------------------------------------------------------
FAILED=()
run_step() { # run_step NAME CMD...
    local name=$1
    shift
    section "$name"
    info "\$ $*"
    if [[ $DRY_RUN == 1 ]]; then
        info "(dry run: not executed)"
        return 0
    fi
    local t=$SECONDS rc=0
    "$@" || rc=$?
    if ((rc == 0)); then
        info "$name: ok ($((SECONDS - t))s)"
    else
        info "$name: FAILED with exit code $rc ($((SECONDS - t))s)"
        FAILED+=("$name")
    fi
}

if [[ $RUNNER == nextest ]]; then
    run_step "Tests (cargo nextest)" cargo nextest run --workspace --all-features --no-fail-fast "$@"
    run_step "Doc tests" cargo test --workspace --all-features --doc
else
    # `cargo test` runs the doc tests too.
    run_step "Tests (cargo test)" cargo test --workspace --all-features --no-fail-fast "$@"
fi

# ------------------------------------------------------------------------------------
section "Summary"
if ((${#FAILED[@]} > 0)); then
    info "FAILED: ${FAILED[*]} (total $((SECONDS - START))s)"
    exit 1
fi
if [[ $DRY_RUN == 1 ]]; then
    info "dry run finished: no test was run (total $((SECONDS - START))s)"
else
    info "all test steps passed (total $((SECONDS - START))s)"
fi
