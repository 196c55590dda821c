from __future__ import annotations

import sys

from headshots.cli import main

sys.exit(main())
