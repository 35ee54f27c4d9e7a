#!/usr/bin/env bash
# Train hone's NDA review adapter on ContractNLI documents, with the settings measured best
# here (docs/benchmarks.md), and leave it in WORKDIR/adapter with a validation report beside it.
#
#   scripts/contractnli-benchmark.sh TRAIN_JSON WORKDIR
#
# TRAIN_JSON is ContractNLI's official JSON (e.g. train.json, or the train/dev documents).
# Its documents are split by document (near-copies kept together): 90% to train, 10% to tune
# the decision thresholds. Then score any other documents with
#
#   hone review TEST_JSON --adapter WORKDIR/adapter --max-evidence 0 --format jsonl --out pred.jsonl
#   hone eval contractnli --gold TEST_JSON --pred pred.jsonl
#
# and, for the same-data baseline, the TF-IDF classifier alone:
#
#   hone review TEST_JSON --tfidf-from WORKDIR/split/train.jsonl --tfidf-valid WORKDIR/split/valid.jsonl \
#       --max-evidence 0 --format jsonl --out tfidf.jsonl
#
# With HOLDOUT=N the script does that itself on N documents of TRAIN_JSON kept out of training
# (split by document with seed 7: the rest minus VALID to train, VALID to tune, N held out;
# HOLDOUT=32 VALID=12 is the 120 / 12 / 32 split of docs/benchmarks.md and of the shipped
# adapter's model card): it reviews them with the adapter and its TF-IDF expert (the recipe),
# with the adapter alone (a copy recalibrated without the expert, WORKDIR/adapter-alone) and
# with the TF-IDF classifier alone on the same split, and writes `hone eval contractnli`'s
# comparison to WORKDIR/heldout (report.md, report.json, report.html).
#
# Environment: HONE (the hone binary; default: build and use target/release/hone),
# MODEL (the base: smollm2 or gemma3-270m, fetched first), HONE_THREADS (CPU threads;
# default: all), EPOCHS (5), PATIENCE (0: the whole cosine
# schedule), KEEP ("last": the last epoch's adapter; "best": the lowest validation loss's),
# TOP_LAYERS (default: 12 of SmolLM2's 30, all 18 of Gemma's), LR (to try other settings), HOLDOUT (0), VALID (12 with HOLDOUT, else a tenth).
# The validation loss is still written each epoch, but it does not pick the adapter: on these
# labels it turns after epoch 3 while the model's decisions on held-out documents keep
# improving to the end of the schedule (docs/benchmarks.md, issue 23).
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

MODEL=${MODEL:-smollm2}
"$HONE" model fetch "$MODEL" >/dev/null
# LoRA in the top layers, `fast` caching the frozen ones below: on SmolLM2 the top 12 of 30
# give the recipe's held-out figures of all 30 in about 0.4x the time (docs/benchmarks.md, issue
# 25; TOP_LAYERS=30 is the slower all-layer recipe, a little stronger for the model alone).
# Gemma keeps every layer (not measured at fewer).
case "$MODEL" in
    smollm2) layers=12 ;;
    gemma3-270m) layers=18 ;;
    *) layers=${TOP_LAYERS:?set TOP_LAYERS (the number of layers to adapt) for $MODEL} ;;
esac
"$HONE" data import contractnli "$train_json" --out "$work/data"
HOLDOUT=${HOLDOUT:-0}
if [ "$HOLDOUT" -gt 0 ]; then
    VALID=${VALID:-12}
    total=$(grep -c . "$work/data/documents.jsonl")
    rest=$((total - HOLDOUT - VALID))
    [ "$rest" -gt 0 ] || { echo "HOLDOUT + VALID ($HOLDOUT + $VALID) leave no training documents of $total" >&2; exit 2; }
    sizes="$rest,$VALID,$HOLDOUT"
elif [ -n "${VALID:-}" ]; then
    total=$(grep -c . "$work/data/documents.jsonl")
    sizes="$((total - VALID)),$VALID,0"
else
    sizes=0.9,0.1,0
fi
"$HONE" data split "$work/data/documents.jsonl" --sizes "$sizes" --seed 7 --out "$work/split"

cat > "$work/train.toml" <<TOML
[model]
base = "$MODEL"
[lora]
r = 16
alpha = 32
dropout = 0.05
target_modules = "all-linear"
[optim]
lr = ${LR:-1e-3}
batch_size = 4
epochs = ${EPOCHS:-5}
max_seq_len = 1152
warmup_ratio = 0.05
patience = ${PATIENCE:-0}
seed = 7
[train]
fast = true
top_layers = ${TOP_LAYERS:-$layers}
log_every = 5
keep = "${KEEP:-last}"
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

if [ "$HOLDOUT" -gt 0 ]; then
    test_docs="$work/split/test.jsonl"
    mkdir -p "$work/heldout"
    review() { # review NAME ARGS...: the held-out documents reviewed, every span ranked
        local name=$1
        shift
        "$HONE" review "$test_docs" "$@" --max-evidence 0 --format jsonl --out "$work/heldout/$name.jsonl"
    }
    review recipe --adapter "$work/adapter"
    # The adapter alone: the same weights, thresholds tuned without the TF-IDF expert.
    "$HONE" adapter pack "$work/adapter" --out "$work/adapter-alone" --dtype f32 --overwrite
    "$HONE" review --calibrate "$work/split/valid.jsonl" --adapter "$work/adapter-alone" --model-alone
    review adapter-alone --adapter "$work/adapter-alone"
    review tfidf --tfidf-from "$work/split/train.jsonl" --tfidf-valid "$work/split/valid.jsonl"
    "$HONE" eval contractnli --gold "$test_docs" \
        --pred "recipe=$work/heldout/recipe.jsonl" \
        --pred "adapter-alone=$work/heldout/adapter-alone.jsonl" \
        --pred "tfidf-same-split=$work/heldout/tfidf.jsonl" \
        --out "$work/heldout"
fi
