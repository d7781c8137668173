"""``python -m api.cli``: the ``ulak`` command."""

import sys

from api.cli.main import main

sys.exit(main())
