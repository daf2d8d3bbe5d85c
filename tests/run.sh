#!/usr/bin/env bash
# The README's test command: install every test peer (idempotent), then run
# the whole suite. Tests start and stop the peers they need themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup-peers.sh
# A clean build keeps no incremental cache: it is never reused and costs gigabytes.
CARGO_INCREMENTAL=0 cargo test --locked --all-targets
