#!/usr/bin/env bash
# Active learning measured on ContractNLI (issue 19, docs/operate.md "Active learning, measured"):
# does labelling the documents the review adapter is least sure of (`hone data select`, entropy
# of each check's label distribution summed over the 17 checks) teach the next adapter more than
# labelling as many documents picked at random?
#
#   scripts/active-learning-experiment.sh TRAIN_JSON WORKDIR
#
# Once: the annotated documents are split by document (seed 7) into TEST test documents, VALID
# validation documents (decision thresholds, early stopping) and the rest. Per seed: the rest is
# split again into INIT labelled documents and an unlabelled pool (POOL documents); an adapter A
# is trained on the INIT documents; `hone data select --adapter A --pool POOL --budget BUDGET
# --by BY` picks BUDGET documents by uncertainty (arm `uncertain-BY`), and BUDGET documents are
# drawn at random from the same pool with the same seed (arm `random`). Their gold annotations
# stand in for the reviewer's labels. Two adapters are trained the same way from scratch, on
# INIT + uncertain picks and on INIT + random picks, reviewed on the test documents and scored
# by `hone eval contractnli`. The table at the
# end (WORKDIR/results.tsv) has one row per seed and arm.
#
# Environment: HONE (the hone binary; default: build and use target/release/hone), HONE_THREADS,
# SEEDS (default "1 2 3"), BY (nli; or entropy, margin, logprob), INIT (12), BUDGET (12),
# POOL (48), TEST (32), VALID (12), TOP_LAYERS (4), EPOCHS (3), LR (1e-3), PATIENCE (1: stop
# when the validation loss turns; 0 runs the whole schedule), KEEP (best; or last, the adapter
# of the last epoch, as scripts/contractnli-benchmark.sh does). Rerunning in the same WORKDIR
# with another BY trains only the new arm: init and random are shared.
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
SEEDS=${SEEDS:-"1 2 3"}
BY=${BY:-nli}
INIT=${INIT:-12}
BUDGET=${BUDGET:-12}
POOL=${POOL:-48}
TEST=${TEST:-32}
VALID=${VALID:-12}
mkdir -p "$work"
work="$(cd "$work" && pwd)"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

"$HONE" model fetch smollm2 >/dev/null
if [ ! -f "$work/data/documents.jsonl" ]; then
    "$HONE" data import contractnli "$train_json" --out "$work/data"
fi
total=$(grep -c . "$work/data/documents.jsonl")
rest=$((total - TEST - VALID))
[ "$rest" -ge $((INIT + POOL)) ] || { echo "need INIT + POOL <= $rest documents" >&2; exit 2; }
if [ ! -f "$work/fixed/test.jsonl" ]; then
    "$HONE" data split "$work/data/documents.jsonl" --sizes "$rest,$VALID,$TEST" --seed 7 --out "$work/fixed"
fi

# lines of documents.jsonl FILE whose id is listed (one per line) in IDS
pick_docs() { jq -c --slurpfile ids <(jq -R . "$2") 'select(.id as $i | $ids | index($i))' "$1"; }

train() { # train DIR TRAIN_JSONL
    local dir=$1
    if [ -f "$dir/adapter/review.json" ]; then return; fi
    mkdir -p "$dir"
    cat > "$dir/train.toml" <<TOML
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
patience = ${PATIENCE:-1}
seed = 7
[train]
fast = true
top_layers = ${TOP_LAYERS:-4}
log_every = 20
keep = "${KEEP:-best}"
[data]
train = "$2"
validation = "$work/fixed/valid.jsonl"
format = "review"
[output]
dir = "adapter"
TOML
    log "training $dir ($(grep -c . "$2") documents)"
    # a run cut short earlier is started over (a finished one was skipped above)
    "$HONE" train --config "$dir/train.toml" --overwrite > "$dir/train.log" 2>&1
}

score() { # score DIR -> metrics json
    local dir=$1
    if [ ! -f "$dir/metrics.json" ]; then
        log "reviewing the test documents with $dir"
        "$HONE" review "$work/fixed/test.jsonl" --adapter "$dir/adapter" --max-evidence 0 \
            --format jsonl --out "$dir/pred.jsonl" 2>/dev/null
        "$HONE" eval contractnli --gold "$work/fixed/test.jsonl" --pred "$dir/pred.jsonl" --json > "$dir/metrics.json"
    fi
}

printf 'seed\tarm\tdocuments\tmetrics\n' > "$work/results.tsv"
for seed in $SEEDS; do
    s="$work/seed$seed"
    mkdir -p "$s"
    if [ ! -f "$s/split/train.jsonl" ]; then
        "$HONE" data split "$work/fixed/train.jsonl" --sizes "$INIT,$POOL,0" --seed "$seed" --out "$s/split"
    fi
    train "$s/init" "$s/split/train.jsonl"
    u="uncertain-$BY"
    if [ ! -f "$s/$u.ids" ]; then
        log "selecting $BUDGET of $POOL pool documents by uncertainty, --by $BY (seed $seed)"
        rm -f "$s/$u.db"
        "$HONE" data select --adapter "$s/init/adapter" --pool "$s/split/valid.jsonl" --budget "$BUDGET" \
            --by "$BY" --store "$s/$u.db" --out "$s/$u.picks.jsonl" > "$s/$u.select.log"
        jq -r .doc_id "$s/$u.picks.jsonl" > "$s/$u.ids"
    fi
    if [ ! -f "$s/random.ids" ]; then
        jq -r .id "$s/split/valid.jsonl" | shuf -n "$BUDGET" --random-source=<(yes "$seed") > "$s/random.ids"
    fi
    for arm in "$u" random; do
        if [ ! -f "$s/$arm.train.jsonl" ]; then
            { cat "$s/split/train.jsonl"; pick_docs "$s/split/valid.jsonl" "$s/$arm.ids"; } > "$s/$arm.train.jsonl"
        fi
        train "$s/$arm" "$s/$arm.train.jsonl"
        score "$s/$arm"
    done
    score "$s/init"
    for arm in init "$u" random; do
        n=$(grep -c . "$s/split/train.jsonl")
        [ "$arm" = init ] || n=$(grep -c . "$s/$arm.train.jsonl")
        printf '%s\t%s\t%s\t%s\n' "$seed" "$arm" "$n" "$(jq -c . "$s/$arm/metrics.json")" >> "$work/results.tsv"
    done
done
cat "$work/results.tsv"
