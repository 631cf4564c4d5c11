"""The package version, in a module of its own so that any module can record it
(model files, ONNX exports, ``chainrule --version``) without importing the package
facade, which imports them."""

#: The version of this chainrule; pyproject.toml carries the same string.
VERSION = "0.1.0"
