"""``python -m bench.sandbox_server moco|contacts --port 0 [--latency-min A --latency-max B] ...``

The project's sandboxes (:mod:`sandbox`) served for the benchmark, with two differences that only
this process sees (the sandbox code is not changed):

- **TCP_NODELAY** on every accepted connection. ``sandbox.server`` writes the status line and
  headers and then the body with two ``send()`` calls on a keep-alive connection; with Nagle's
  algorithm on, the body waits for the client's delayed ACK, which adds ~40 ms to *every* answer
  (measured: 43 ms per request on a kept-alive connection, 1.1 ms with TCP_NODELAY). The real APIs
  have no such stall, so the bench removes it and models latency explicitly instead.
  ``--keep-nagle`` serves exactly as ``python -m sandbox`` does.
- **Jittered latency**: each API answer waits ``uniform(latency_min, latency_max)`` seconds (the
  sandbox itself only knows one fixed ``--latency``). ``POST /_sandbox/config {"latency": x}``
  still sets a fixed value.

Every other flag is the sandbox's own (``--rate-limit``, ``--rate-window``, ``--generate``, ...).
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys

import sandbox.server as sandbox_server
from sandbox.server import SandboxApp, serve_forever

APPS = {"moco": "sandbox.moco", "contacts": "sandbox.contacts"}


def _latency_get(self: SandboxApp) -> float:
    low, high = getattr(self, "_bench_latency", (0.0, 0.0))
    if high <= 0:
        return 0.0
    return random.uniform(low, high) if high > low else low  # noqa: S311


def _latency_set(self: SandboxApp, value: float) -> None:
    self._bench_latency = (float(value), float(value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_server", description=__doc__)
    sub = parser.add_subparsers(dest="api", required=True)
    modules = {}
    for name, module_name in APPS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        p = sub.add_parser(name)
        p.add_argument("--port", type=int, default=0)
        p.add_argument("--latency-min", type=float, default=0.0, help="seconds, lower bound")
        p.add_argument("--latency-max", type=float, default=0.0, help="seconds, upper bound")
        p.add_argument("--keep-nagle", action="store_true",
                       help="serve without TCP_NODELAY, exactly like python -m sandbox")
        module.add_arguments(p)
    args = parser.parse_args(argv)
    if not args.keep_nagle:
        sandbox_server._Handler.disable_nagle_algorithm = True  # noqa: SLF001
    # A property on the base class: every read of app.latency draws a new value.
    SandboxApp.latency = property(_latency_get, _latency_set)  # type: ignore[assignment]
    module = modules[args.api]
    args.latency = 0.0
    app = module.create_app(args)
    app._bench_latency = (args.latency_min, max(args.latency_min, args.latency_max))  # noqa: SLF001
    serve_forever(app, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
