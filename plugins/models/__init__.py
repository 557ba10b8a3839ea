"""Built-in model plugins: the reference baselines and EfficientNet-Lite."""
