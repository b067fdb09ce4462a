"""``python -m tap_contacts``: the same command line as ``tap-contacts``."""

from __future__ import annotations

from tap_contacts.tap import TapContacts

TapContacts.cli()
