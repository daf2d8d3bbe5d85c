#!/usr/bin/env bash
# The README's test command: install every test peer (idempotent), then run
# the whole suite. Tests start and stop the peers they need themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup-peers.sh
cargo test --locked --all-targets
