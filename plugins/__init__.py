"""Built-in plugins. Each module implements hooks from :mod:`harness.hookspecs`, exactly as a
third-party plugin would, and is listed in ``registry.yaml``. Module level imports stay light:
torch and transformers are imported only inside factories."""
