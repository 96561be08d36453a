"""``python -m postline.app``: the ``postline`` command."""

import sys

from postline.app.cli import main

sys.exit(main())
