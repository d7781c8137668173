"""The SMSC simulator (``ulak.sim.smsc``) as a script: ``python scripts/smsc_sim.py --help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ulak.sim.smsc import main

if __name__ == "__main__":
    sys.exit(main())
