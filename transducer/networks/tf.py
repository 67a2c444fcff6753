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
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

__all__ = ["tf", "keras", "layers", "ops", "import_tensorflow", "verbose", "eager"]
