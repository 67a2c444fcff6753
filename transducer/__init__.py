"""transducer: train and run character-level recurrent string-to-string models.

    import transducer
    model = transducer.load("models/translit")      # no TensorFlow
    model.predict(["privet"])                        # ['привет']
    transducer.train("pairs.tsv", "models/m", arch="seq2seq", epochs=5, progress=True)
    transducer.summary("models/m").best_epoch        # how it was trained

Importing the package is cheap: the API (api.py) loads on first use, and TensorFlow
only when training or the Keras engine needs it.
"""

from transducer._version import __version__

__all__ = [
    "load", "train", "export", "summary", "network_summary", "assemble", "Model", "Prediction", "Candidate", "TrainOptions",
    "PredictOptions", "TransducerError", "__version__",
]

_API = {"load", "train", "export", "summary", "network_summary", "assemble", "Model", "Prediction", "Candidate", "TrainOptions"}
_CONFIG = {"PredictOptions", "TransducerError"}


def __getattr__(name):
    if name in _API:
        from transducer import api

        return getattr(api, name)
    if name in _CONFIG:
        from transducer.core import config

        return getattr(config, name)
    raise AttributeError(f"module 'transducer' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
