"""Allow ``python -m nodewatch``."""

import sys

from nodewatch.cli import main

sys.exit(main())
