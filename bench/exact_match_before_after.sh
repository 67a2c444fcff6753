#!/usr/bin/env bash
# Exact match on the sample tasks with the code before issue 10 (masks, length buckets)
# and with this checkout, at two --max-len. Run by hand:
#
#   git archive 0f4464c | tar -x -C /tmp/before    # the code before masks
#   BEFORE=/tmp/before bash bench/exact_match_before_after.sh
#   BEFORE=/tmp/before SEEDS="0 1 2" bash bench/exact_match_before_after.sh   # repeats
#
# Each line: name (with -sSEED), training seconds, `transducer evaluate --json` on the
# test file. Several seeds show the spread of each side, so "the same within noise" can
# be read off: the seed moves the split, the initial weights and the shuffling.
set -uo pipefail
cd "$(dirname "$0")/.."
NOW=$PWD
BEFORE=${BEFORE:?set BEFORE to a checkout of the code to compare with}
OUT=${OUT:-$(mktemp -d -t transducer-em-XXXXXX)}
SEEDS=${SEEDS:-0}

run() {  # name, PYTHONPATH, data, train flags...
    local name=$1 pp=$2 data=$3; shift 3
    local t0=$SECONDS
    (cd /tmp && PYTHONPATH=$pp python -m transducer train "$NOW/sample_data/$data.train.tsv" -m "$OUT/$name" --force "$@" >/dev/null 2>"$OUT/$name.log")
    local took=$((SECONDS - t0))
    echo "$name ${took}s $(cd /tmp && PYTHONPATH=$pp python -m transducer evaluate "$OUT/$name" "$NOW/sample_data/$data.test.tsv" --json 2>/dev/null | tail -1)"
}

# seq2seq: the new recipe off, so that masks and buckets are what differs.
PLAIN="--dropout 0 --label-smoothing 0 --lr-schedule constant --normalize none"
for s in $SEEDS; do
    run translit-before-64-s$s "$BEFORE" translit --max-len 64 --seed $s
    run translit-now-64-s$s "$NOW" translit --max-len 64 --seed $s
    run dates-before-64-s$s "$BEFORE" dates --arch seq2seq --hidden 32 --max-len 64 --epochs 8 --patience 2 --seed $s
    run dates-now-64-s$s "$NOW" dates --arch seq2seq --hidden 32 --max-len 64 --epochs 8 --patience 2 $PLAIN --seed $s
    run dates-now-32-s$s "$NOW" dates --arch seq2seq --hidden 32 --max-len 32 --epochs 8 --patience 2 $PLAIN --seed $s
done
