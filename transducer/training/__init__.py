"""From pairs to a model directory: the tf.data pipeline (stream), the training loop,
the recipe (defaults, early stopping, schedules), checkpoints, ensembles and
tf.distribute. Imports TensorFlow; only `train` needs it."""
