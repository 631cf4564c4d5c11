"""What both model files and ONNX exports record about the writer."""

from __future__ import annotations


def chainrule_version() -> str:
    """The installed chainrule's version, recorded in files for information only."""
    # Imported when called: chainrule/__init__ imports io before it sets __version__.
    import chainrule

    return str(getattr(chainrule, "__version__", "unknown"))
