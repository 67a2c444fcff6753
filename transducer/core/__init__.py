"""What every other package shares, with no TensorFlow and no numpy-heavy work: the
hyperparameters (config), vocabularies, Unicode normalization, reading text files (data),
the model-directory contract (artifacts) and its training history (history)."""
