"""Model families of the training workers: the EfficientNet-Lite0 backbone and the heads on it."""
