"""The TensorFlow gateway: import TensorFlow/Keras once, without the C++ log lines it prints to stderr on import.

TF_CPP_MIN_LOG_LEVEL silences most of TensorFlow's C++ logging, but a few lines (CUDA
probing, "All log messages before absl::InitializeLog()") are written before that
setting is read. So the first import runs with file descriptor 2 pointed at /dev/null,
unless TRANSDUCER_VERBOSE=1 (the CLI's --verbose) asks to see everything.

TRANSDUCER_EAGER=1 runs training steps eagerly (`eager()`, Keras's run_eagerly): for
debugging a training step line by line, and for tiny models, whose few steps cost less
than tracing the training graph (the test suite sets it; tests marked `graph` turn it
off). On real data it is slower.
"""

from __future__ import annotations

import contextlib
import os
import sys


def verbose() -> bool:
    return os.environ.get("TRANSDUCER_VERBOSE") == "1"


def eager() -> bool:
    """Whether training steps run eagerly (TRANSDUCER_EAGER=1) instead of as a traced graph."""
    return os.environ.get("TRANSDUCER_EAGER") == "1"


@contextlib.contextmanager
def _stderr_fd_silenced():
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded, some test runners)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> None:
    """Import tensorflow and keras once, quietly unless verbose."""
    if "keras" in sys.modules and "tensorflow" in sys.modules:
        return
    if verbose():
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_fd_silenced():
        import tensorflow as tf  # noqa: F401
        import keras  # noqa: F401

        tf.get_logger().setLevel("ERROR")
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:
            pass


# The one TensorFlow gateway: every module that needs TensorFlow or Keras imports them from
# here, so the quiet import above always runs first.
import_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402


def predict_function(model):
    """`model`'s forward pass as one graph traced once for every batch size and length.

    predict_on_batch traces again for each new input shape it meets (a decoder's beam
    grows and shrinks, lines differ in length): 0.3 s a trace, 2-5 s per Predictor.
    One signature with the batch (and any unknown) dimensions left open traces once.
    Returns arrays -> numpy output (a list where the model has several outputs)."""
    inputs = list(model.inputs)
    specs = [tf.TensorSpec((None, *t.shape[1:]), t.dtype, name=f"in{i}") for i, t in enumerate(inputs)]

    @tf.function(input_signature=specs)
    def forward(*xs):
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    def run(*arrays):
        out = forward(*[np.asarray(a, dtype=t.dtype) for a, t in zip(arrays, inputs)])
        return [o.numpy() for o in out] if isinstance(out, (list, tuple)) else out.numpy()

    return run


__all__ = ["tf", "keras", "layers", "ops", "import_tensorflow", "verbose", "eager", "predict_function"]
