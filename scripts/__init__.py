"""Developer scripts, run as files (``scripts/demo``, ``scripts/test``); nothing imports them."""
