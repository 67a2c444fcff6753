#!/usr/bin/env bash
# GPU check for transducer: run by hand on a machine with an NVIDIA GPU.
#
#   bash bench/gpu_check.sh                 # uses `python` and `transducer` on PATH
#   PYTHON=/path/to/venv/bin/python EPOCHS=5 BATCH=256 bash bench/gpu_check.sh
#
# 1. confirms TensorFlow sees the GPU(s);
# 2. confirms every GRU of the models we build can run on cuDNN's fast path (default
#    activations, reset_after=True, no recurrent dropout, and padding masks that are
#    strictly right-padded, as blocks.padding_mask makes them): it rebuilds each GRU with
#    use_cudnn=True and calls it with such a mask (rows of lengths 5 and 3 of 5 steps;
#    a backward GRU too), which raises instead of silently falling back. Keras's cuDNN
#    path also refuses a row with no real step at all; training rows and predicted lines
#    are never empty (empty inputs are invalid rows; empty lines skip the model);
# 3. trains the sample tasks (translit, dates) with --distribute mirrored for both heads
#    and both architectures (seq2seq is skipped, with a note, when this checkout lacks it)
#    and prints training throughput in pairs/second.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
EPOCHS=${EPOCHS:-3}
BATCH=${BATCH:-256}  # per replica
HIDDEN=${HIDDEN:-128}
TMP=$(mktemp -d -t transducer-gpu-check-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

echo "== GPU visible to the driver"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L
else
    echo "nvidia-smi not found (continuing: TensorFlow decides below)"
fi

echo "== GPU visible to TensorFlow"
"$PYTHON" - <<'EOF'
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
print(f"TensorFlow {tf.__version__}, built with CUDA: {tf.test.is_built_with_cuda()}, GPUs: {gpus}")
if not gpus:
    sys.exit("TensorFlow sees no GPU: install tensorflow[and-cuda] matching the driver")
EOF

ARCHS="aligned"
if "$PYTHON" -c "import transducer.networks.seq2seq" >/dev/null 2>&1; then
    ARCHS="aligned seq2seq"
else
    echo "note: transducer.networks.seq2seq is not in this checkout; skipping --arch seq2seq"
fi

echo "== training throughput (--distribute mirrored, $EPOCHS epochs, batch $BATCH per replica, hidden $HIDDEN)"
printf "%-9s %-8s %-17s %8s %10s %12s %10s\n" task arch head strategy seconds "pairs/s" val_exact
for task in translit dates; do
    for arch in $ARCHS; do
        for head in dense time-distributed; do
            out="$TMP/$task-$arch-$head"
            "$PYTHON" -m transducer train "sample_data/$task.train.tsv" --model-dir "$out" \
                --arch "$arch" --head "$head" --hidden "$HIDDEN" --epochs "$EPOCHS" --patience "$EPOCHS" \
                --batch-size "$BATCH" --distribute mirrored --force 2>"$out.log" || {
                echo "$task $arch $head: training failed, last lines of its log:"; tail -5 "$out.log"; continue; }
            "$PYTHON" - "$out" "$task" "$arch" "$head" <<'EOF'
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
path, task, arch, head = sys.argv[1:]
metrics = json.load(open(os.path.join(path, "metrics.json")))
config = json.load(open(os.path.join(path, "config.json")))
n_train = config["data"]["n_train"]
seconds = metrics["train_seconds"]
pairs_per_s = n_train * metrics["epochs_run"] / seconds
strategy = config.get("train", {}).get("distribute", "?")

# cuDNN check: rebuild every GRU with use_cudnn=True and run it on the GPU; Keras raises
# if the layer's configuration cannot use cuDNN (it would otherwise fall back silently).
import keras
from transducer.networks.saved import load_keras_model
from transducer.core.artifacts import read_info
model = load_keras_model(read_info(path))
grus = []  # (GRU, input width), a Bidirectional's inner GRUs included
for layer in model.layers:
    inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input] if hasattr(layer, "_inbound_nodes") and layer._inbound_nodes else []
    for inner in (layer, getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None)):
        if isinstance(inner, keras.layers.GRU) and inputs:
            grus.append((inner, int(inputs[0].shape[-1])))
failed = 0
for gru, width in grus:
    probe = keras.layers.GRU.from_config({**gru.get_config(), "use_cudnn": True})
    right_padded = keras.ops.convert_to_tensor([[True] * 5, [True] * 3 + [False] * 2])  # (2, 5)
    try:
        probe(keras.random.normal((2, 5, width)))
        probe(keras.random.normal((2, 5, width)), mask=right_padded)
    except Exception as e:  # noqa: BLE001 - any failure means "not on cuDNN"
        failed += 1
        print(f"  {task} {arch} {head}: GRU {gru.name} NOT on cuDNN: {str(e).splitlines()[0]}")
print(f"{task:<9} {arch:<8} {head:<17} {strategy:>8} {seconds:>10.1f} {pairs_per_s:>12.0f}"
      f" {metrics['final'].get('exact_match', float('nan')):>10.3f}   cuDNN: {len(grus) - failed}/{len(grus)} GRU layer(s)")
EOF
            grep -h "global batch" "$out.log" | sed 's/^/  /' | head -1 || true
        done
    done
done
