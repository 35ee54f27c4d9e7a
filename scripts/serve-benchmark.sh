#!/usr/bin/env bash
# Serving throughput, hone against llama.cpp's server, in one session on the same GGUF and the
# same load (`hone bench serve`: chat requests, temperature 0, max_tokens 64, the peer's short
# NDA-clause prompts), at concurrency 1 and 16, 3 runs each; prints the medians.
#   scripts/serve-benchmark.sh [LLAMA_SERVER]   (default: the peers' build, ../shared/bench/peers)
#   HONE_SERVE_FLAGS="--prefix-cache" scripts/serve-benchmark.sh   (extra flags for hone serve)
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMA=${1:-${PEERS_DIR:-$HOME/.cache/hone-peers}/llama.cpp-build/bin/llama-server}
cargo build -q --release --bin hone
H=target/release/hone
$H model fetch smollm2 >/dev/null
M=${HONE_HOME:-$HOME/.cache/hone}/models/SmolLM2-135M-Instruct.Q4_1.gguf
out=$(mktemp -d)
run() { # name url model
  for rep in 1 2 3; do
    for c in 1 16; do
      n=$((c == 1 ? 8 : 64))
      $H bench serve --url "$2" --concurrency $c --requests $n --max-tokens 64 --model "$3" --json \
        > "$out/$1-c$c-r$rep.json"
    done
  done
}
$H serve --port 18081 --threads 2 ${HONE_SERVE_FLAGS:-} > "$out/hone.log" 2>&1 & P=$!
sleep 3
$H bench serve --url http://127.0.0.1:18081 --concurrency 4 --requests 8 --max-tokens 16 --json > /dev/null
run hone http://127.0.0.1:18081 smollm2
kill $P; sleep 1
if [ -x "$LLAMA" ]; then
  "$LLAMA" -m "$M" -t 2 -np 16 -c 8192 --port 18082 > "$out/llama.log" 2>&1 & P=$!
  sleep 5
  $H bench serve --url http://127.0.0.1:18082 --concurrency 4 --requests 8 --max-tokens 16 --model m --json > /dev/null
  run llama http://127.0.0.1:18082 m
  kill $P
else
  echo "no llama-server at $LLAMA: hone only" >&2
fi
python3 - "$out" <<'PY'
import glob, json, statistics as st, sys
out = sys.argv[1]
for name in ["hone", "llama"]:
    for c in [1, 16]:
        ds = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{name}-c{c}-r*.json"))]
        if not ds:
            continue
        med = {k: round(st.median(d[k] for d in ds), 1) for k in
               ["output_tok_s", "requests_per_s", "ttft_p50_ms", "ttft_p95_ms", "e2e_p50_ms", "e2e_p95_ms", "itl_p50_ms"]}
        print(name, "concurrency", c, "runs", [round(d["output_tok_s"], 1) for d in ds],
              "median", med, "errors", sum(d["errors"] for d in ds))
PY
