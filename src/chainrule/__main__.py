"""``python -m chainrule``: the ``chainrule`` command (as ``python -m chainrule.cli``)."""

import sys

from .cli import main

sys.exit(main())
