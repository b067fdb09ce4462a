"""``python -m sandbox moco|contacts --port P``: serve one emulator on 127.0.0.1."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from sandbox.server import serve_forever

APPS = {"moco": "sandbox.moco", "contacts": "sandbox.contacts"}


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line), build the chosen sandbox and serve it."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="api", required=True)
    modules = {}
    for name, module_name in APPS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        p = sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
        p.add_argument("--latency", type=float, default=0.0, help="seconds added to each answer")
        p.add_argument(
            "--latency-max",
            type=float,
            default=None,
            help="with it, each answer waits a random time from --latency to this",
        )
        p.add_argument("--seed-file", help="JSON file loaded as if POSTed to /_sandbox/seed")
        module.add_arguments(p)
    args = parser.parse_args(argv)
    module = modules[args.api]
    app = module.create_app(args)
    app.latency_max = args.latency_max
    if args.seed_file:
        with Path(args.seed_file).open(encoding="utf-8") as fh:
            app.seed(json.load(fh))
    serve_forever(app, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
