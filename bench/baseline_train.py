#!/usr/bin/env python3
"""The plain Keras training script of the classic example, for bench_train.py.

    python bench/baseline_train.py PAIRS.tsv --epochs 1 --hidden 128 --max-len 64

GRU(hidden, return_sequences) -> TimeDistributed(Dense(V)) -> softmax over one-hot
characters, categorical cross-entropy, Adam, model.fit on numpy arrays with
validation_split, as the classic example does. The data conventions match transducer's
(inputs padded with id 0, targets filled with the end id 3 after the string; the last
validation_split of the rows is held out). Prints one JSON line: n_train and the seconds
model.fit took.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("pairs")
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--hidden", type=int, default=128)
ap.add_argument("--max-len", type=int, default=64)
ap.add_argument("--batch-size", type=int, default=64)
ap.add_argument("--learning-rate", type=float, default=3e-3)
ap.add_argument("--val-split", type=float, default=0.1)
args = ap.parse_args()

pairs = [line.rstrip("\n").split("\t") for line in open(args.pairs, encoding="utf-8") if line.strip()]
reserved = ["<pad>", "<unk>", "<s>", "</s>"]
in_vocab = reserved + sorted({c for a, _ in pairs for c in a})
out_vocab = reserved + sorted({c for _, b in pairs for c in b})
in_id = {c: i for i, c in enumerate(in_vocab)}
out_id = {c: i for i, c in enumerate(out_vocab)}

T = args.max_len
x = np.zeros((len(pairs), T, len(in_vocab)), dtype=np.float32)  # (N, T, Vin) one-hot
y = np.zeros((len(pairs), T, len(out_vocab)), dtype=np.float32)  # (N, T, Vout) one-hot
for n, (a, b) in enumerate(pairs):
    for t in range(T):
        x[n, t, in_id[a[t]] if t < len(a) else 0] = 1.0
        y[n, t, out_id[b[t]] if t < len(b) else 3] = 1.0

model = keras.Sequential(
    [
        keras.Input(shape=(T, len(in_vocab))),
        keras.layers.GRU(args.hidden, return_sequences=True),
        keras.layers.TimeDistributed(keras.layers.Dense(len(out_vocab))),
        keras.layers.Activation("softmax"),
    ]
)
model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(args.learning_rate), metrics=["accuracy"])
t0 = time.perf_counter()
model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_split=args.val_split, verbose=0)
fit_seconds = time.perf_counter() - t0
n_val = int(len(pairs) * args.val_split)
print(json.dumps({"n_train": len(pairs) - n_val, "fit_seconds": fit_seconds}))
sys.stdout.flush()
