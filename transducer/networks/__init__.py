"""The Keras networks, one module per architecture, and the one TensorFlow gateway
(`networks.tf`): nothing outside this package and `training` imports TensorFlow."""
