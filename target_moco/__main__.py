"""``python -m target_moco``: the same as the ``target-moco`` command."""

from target_moco.target import TargetMoco

TargetMoco.cli()
