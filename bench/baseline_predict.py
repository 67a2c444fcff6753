#!/usr/bin/env python3
"""The plain Keras baseline: what a user would write without transducer.

    cat inputs.txt | python bench/baseline_predict.py MODEL_DIR > outputs.txt

Loads MODEL_DIR/model.keras and the vocabularies from MODEL_DIR/config.json, one-hot
encodes all of stdin, runs model.predict(batch_size=1024, verbose=0), takes the argmax
and prints the characters up to the first end symbol. No transducer import (so no help
from its numpy engine); TensorFlow's C++ logs are silenced as any script would.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

model_dir = sys.argv[1]
config = json.load(open(os.path.join(model_dir, "config.json"), encoding="utf-8"))
in_vocab, out_vocab = config["input_vocab"], config["output_vocab"]
max_len = config["model"]["max_len"]
char_id = {c: i for i, c in enumerate(in_vocab)}

lines = sys.stdin.read().splitlines()
x = np.zeros((len(lines), max_len, len(in_vocab)), dtype=np.float32)  # (N, T, Vin) one-hot
for n, line in enumerate(lines):
    for t, c in enumerate(line[:max_len]):
        x[n, t, char_id.get(c, 1)] = 1.0  # 1 is <unk>
    x[n, len(line[:max_len]) :, 0] = 1.0  # 0 is <pad>

model = keras.saving.load_model(os.path.join(model_dir, "model.keras"), compile=False)
best = model.predict(x, batch_size=1024, verbose=0).argmax(axis=-1)  # (N, T)

out = []
for row, line in zip(best, lines):
    chars = []
    for i in row:
        if i in (0, 3):  # <pad>, </s>: the output ends
            break
        if i >= 4:
            chars.append(out_vocab[i])
    out.append("".join(chars) if line else "")
sys.stdout.write("\n".join(out) + ("\n" if out else ""))
