#!/usr/bin/env bash
# Train hone's NDA review adapter on ContractNLI documents, with the settings measured best
# here (docs/benchmarks.md), and leave it in WORKDIR/adapter with a validation report beside it.
#
#   scripts/contractnli-benchmark.sh TRAIN_JSON WORKDIR
#
# TRAIN_JSON is ContractNLI's official JSON (e.g. train.json, or the train/dev documents).
# Its documents are split by document (near-copies kept together): 90% to train, 10% to tune
# the decision thresholds and stop early. Then score any other documents with
#
#   hone review TEST_JSON --adapter WORKDIR/adapter --max-evidence 0 --format jsonl --out pred.jsonl
#   hone eval contractnli --gold TEST_JSON --pred pred.jsonl
#
# and, for the same-data baseline, the TF-IDF classifier alone:
#
#   hone review TEST_JSON --tfidf-from WORKDIR/split/train.jsonl --tfidf-valid WORKDIR/split/valid.jsonl \
#       --max-evidence 0 --format jsonl --out tfidf.jsonl
#
# Environment: HONE (the hone binary; default: build and use target/release/hone),
# HONE_THREADS (CPU threads; default: all), EPOCHS, TOP_LAYERS, LR (to try other settings).
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 TRAIN_JSON WORKDIR" >&2
    exit 2
fi
train_json=$1
work=$2
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${HONE:-}" ]; then
    (cd "$root" && cargo build --release --bin hone -q)
    HONE="$root/target/release/hone"
fi
mkdir -p "$work"
work="$(cd "$work" && pwd)"

"$HONE" model fetch smollm2 >/dev/null
"$HONE" data import contractnli "$train_json" --out "$work/data"
"$HONE" data split "$work/data/documents.jsonl" --sizes 0.9,0.1,0 --seed 7 --out "$work/split"

cat > "$work/train.toml" <<TOML
[model]
base = "smollm2"
[lora]
r = 16
alpha = 32
dropout = 0.05
target_modules = "all-linear"
[optim]
lr = ${LR:-1e-3}
batch_size = 4
epochs = ${EPOCHS:-3}
max_seq_len = 1152
warmup_ratio = 0.05
patience = 1
seed = 7
[train]
fast = true
top_layers = ${TOP_LAYERS:-30}
log_every = 5
[data]
train = "split/train.jsonl"
validation = "split/valid.jsonl"
format = "review"
[output]
dir = "adapter"
TOML

# Training ends by calibrating on the validation documents: a TF-IDF + logistic-regression
# span classifier is fitted on the training documents and weighed against the model
# (adapter/tfidf.safetensors, its weight in adapter/review.json), the decision thresholds are
# tuned, and the metrics written (adapter/validation.json, with the model alone beside them).
"$HONE" train --config "$work/train.toml"
echo "adapter: $work/adapter (validation report: $work/adapter/validation.json)"
