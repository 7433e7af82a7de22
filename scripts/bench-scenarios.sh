#!/usr/bin/env bash
# The burst and the storm (issue 6) against tenwatch, the floor and the peer, on this machine:
# bench-compare.sh with RUNS="burst storm" and the systems the scenarios mean something for.
#   bash scripts/bench-scenarios.sh [DEVICES]          (default 1000; about 75 s per system)
# Environment as bench-compare.sh; ONLY defaults to "tenwatch floor peer".
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-burst storm} ONLY=${ONLY:-tenwatch floor peer} exec bash scripts/bench-compare.sh "$@"
