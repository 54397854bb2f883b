#!/usr/bin/env bash
# The benchmark suite, on a fresh machine: installs the peers it compares against (nginx, wrk,
# oha), generates its logs, runs every comparison interleaved over several rounds, and appends
# the tables to bench/RESULTS.md. Run by hand, never by CI. Load goes only to 127.0.0.1.
#
#   bench/run.sh           # all comparisons, 3 rounds
#   bench/run.sh --quick   # 1 round (a smoke test of the suite itself)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
[ "${1:-}" = "--quick" ] && rounds=1

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] || ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq nginx-light wrk
fi
if ! command -v oha >/dev/null && [ ! -x /opt/oha/bin/oha ]; then
  cargo install oha --locked --root /opt/oha    # several minutes on 2 cores
fi
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3; }
# The https rows make their certificates with the openssl CLI.
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }

python3 bench/bench.py all --rounds "$rounds"
