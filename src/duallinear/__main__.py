"""``python -m duallinear``: the main job without arguments, the ``duallinear`` command with."""

import sys

from .cli import main

sys.exit(main())
