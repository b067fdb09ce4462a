"""``python -m sync_listener``: the same as the ``sync-listener`` command."""

from __future__ import annotations

import sys

from sync_listener.cli import main

sys.exit(main())
