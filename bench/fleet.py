"""The simulated fleet as a bench script: ``python bench/fleet.py --nodes N ...`` is ``nodewatch simulate``.

The simulator lives in the package, ``nodewatch.simnodes`` (the nodes) and
``nodewatch.simulate`` (the runner and its CLI), so that ``nodewatch up --simulate``
works from an installed wheel. This script only keeps the benches' and the README's
commands working; benches and tests import the simulator from the package.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in {None, ""}:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nodewatch.simulate import main

if __name__ == "__main__":
    sys.exit(main())
