"""From a model directory to outputs: the numpy and Keras engines, decoding (greedy, beam,
k-best), ensembles, streaming prediction, evaluation and explanations. Never imports
`training`; TensorFlow only through `networks` when the Keras engine is asked for."""
