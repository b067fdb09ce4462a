"""How fast the listener answers a webhook: ``python -m bench.listener_latency``.

Starts a real ``sync-listener`` (``python -m sync_listener --port 0``, 127.0.0.1 only) on a fresh
SQLite ledger in a temporary folder, with throwaway signing keys, and posts signed deliveries
(MOCO and HighLevel in turn): one after another over a kept-alive connection (sequential), one
after another on a new connection each, then from several senders at once (concurrent, one
process per sender, each keeping its connection). Each latency is the sender's round trip, from
sending the request to having the 202: verification, the committed ledger insert (SQLite
``synchronous=FULL``) and the answer. The listener's runs
happen meanwhile as in production (debounce 2 s), with a trivial command (``python -c pass``) so
that their process starts compete for the CPU as real runs would.

Prints one JSON object: per phase p50, p90, p99 and max in milliseconds, deliveries per second
and the listener's CPU time per delivery; and the machine with its load at the end.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

ROOT = Path(__file__).resolve().parents[1]
SECRET = "0123456789abcdef0123456789abcdef"  # noqa: S105  (a throwaway key for this run only)
LOCATION = "bench-location"
ACCEPTED = 202


class Deliveries:
    """Signed deliveries, MOCO and Contacts in turn, each unique (so none is a replay)."""

    def __init__(self, key: ed25519.Ed25519PrivateKey, first: int = 0) -> None:
        self._key = key
        self._count = first

    def next(self) -> tuple[str, bytes, dict[str, str]]:
        """The next delivery: its path, body and headers."""
        self._count += 1
        n = self._count
        if n % 2:
            body = json.dumps({"id": n, "firstname": "Ada", "lastname": f"L{n}"}).encode()
            signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            return (
                "/webhooks/moco",
                body,
                {
                    "Content-Type": "application/json",
                    "X-Moco-Target": "Contact",
                    "X-Moco-Event": "update",
                    "X-Moco-Timestamp": str(int(time.time() * 1000)),
                    "X-Moco-Signature": signature,
                    "X-Moco-User-Id": "1",
                },
            )
        payload = {
            "type": "ContactUpdate",
            "locationId": LOCATION,
            "id": f"c{n}",
            "firstName": "Ada",
            "timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "webhookId": str(uuid.uuid4()),
        }
        body = json.dumps(payload).encode()
        signature = base64.b64encode(self._key.sign(body)).decode()
        return (
            "/webhooks/contacts",
            body,
            {"Content-Type": "application/json", "x-ghl-signature": signature},
        )


def post_many(
    url: str, deliveries: Deliveries, count: int, out: list[float], *, fresh: bool = False
) -> None:
    """Post ``count`` deliveries on one connection; append each round trip (ms) to ``out``.

    The client is the standard library's (a light one, so that on two cores the numbers are the
    listener's more than the client's). ``fresh``: a new connection for each delivery, as a
    sender that does not keep connections alive (the connect is then part of the round trip).
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        for _ in range(count):
            path, body, headers = deliveries.next()
            started = time.perf_counter()
            if fresh:
                connection.close()
                connection = http.client.HTTPConnection(
                    parts.hostname or "127.0.0.1", parts.port, timeout=30
                )
            connection.request("POST", path, body=body, headers=headers)
            answer = connection.getresponse()
            text = answer.read()
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status != ACCEPTED:
                msg = f"{path} answered {answer.status}: {text!r}"
                raise RuntimeError(msg)
            out.append(elapsed)
    finally:
        connection.close()


def sender(url: str, raw_key: bytes, first: int, count: int) -> list[float]:
    """One concurrent sender (its own process, so no client shares a GIL with another)."""
    deliveries = Deliveries(ed25519.Ed25519PrivateKey.from_private_bytes(raw_key), first)
    latencies: list[float] = []
    post_many(url, deliveries, count, latencies)
    return latencies


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(latencies: list[float], seconds: float, cpu: float) -> dict[str, float]:
    """Percentiles in milliseconds, the rate, and the listener's CPU per delivery."""
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "count": len(latencies),
        "per_second": round(len(latencies) / seconds, 1),
        "listener_cpu_ms_per_delivery": round(cpu * 1000 / len(latencies), 2),
        "p50_ms": round(cuts[49], 2),
        "p90_ms": round(cuts[89], 2),
        "p99_ms": round(cuts[98], 2),
        "max_ms": round(max(latencies), 2),
    }


def start_listener(folder: Path, public_pem: str) -> tuple[subprocess.Popen[bytes], str]:
    """The listener process and its URL (from its first line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_LISTENER_")}
    command = json.dumps([sys.executable, "-c", "pass"])
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "SYNC_LISTENER_LEDGER_URL": f"sqlite:///{folder / 'ledger.db'}",
            "SYNC_LISTENER_LOCATION_ID": LOCATION,
            "SYNC_LISTENER_MOCO_WEBHOOK_SECRET": SECRET,
            "SYNC_LISTENER_CONTACTS_PUBLIC_KEY": public_pem,
            "SYNC_LISTENER_MOCO_TO_CONTACTS_COMMAND": command,
            "SYNC_LISTENER_CONTACTS_TO_MOCO_COMMAND": command,
            "SYNC_LISTENER_RUN_DIRECTORY": str(folder),
            "SYNC_LISTENER_LOG_LEVEL": "WARNING",
        }
    )
    stderr = (folder / "listener.stderr").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "sync_listener", "--port", "0"],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    stderr.close()
    assert process.stdout is not None  # noqa: S101  (Popen with PIPE)
    line = process.stdout.readline().decode().strip()
    if not line.startswith("listening on "):
        process.kill()
        msg = f"listener did not start: {(folder / 'listener.stderr').read_text()}"
        raise RuntimeError(msg)
    return process, line.removeprefix("listening on ")


def main() -> int:
    """Run the bench and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=2000, help="deliveries, one at a time")
    parser.add_argument(
        "--fresh", type=int, default=500, help="deliveries, each on a new connection"
    )
    parser.add_argument("--senders", type=int, default=8, help="concurrent senders")
    parser.add_argument("--per-sender", type=int, default=250, help="deliveries per sender")
    parser.add_argument("--warmup", type=int, default=50, help="deliveries not measured")
    args = parser.parse_args()
    key = ed25519.Ed25519PrivateKey.generate()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    deliveries = Deliveries(key)
    with tempfile.TemporaryDirectory(prefix="listener-bench-") as tmp:
        process, url = start_listener(Path(tmp), public_pem)
        try:
            post_many(url, deliveries, args.warmup, [])
            sequential: list[float] = []
            cpu, started = cpu_seconds(process.pid), time.perf_counter()
            post_many(url, deliveries, args.sequential, sequential)
            phases = {
                "sequential": summary(
                    sequential,
                    time.perf_counter() - started,
                    cpu_seconds(process.pid) - cpu,
                )
            }
            fresh: list[float] = []
            cpu, started = cpu_seconds(process.pid), time.perf_counter()
            post_many(url, deliveries, args.fresh, fresh, fresh=True)
            phases["sequential_new_connection_each"] = summary(
                fresh, time.perf_counter() - started, cpu_seconds(process.pid) - cpu
            )
            raw = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            with ProcessPoolExecutor(args.senders) as pool:
                cpu, started = cpu_seconds(process.pid), time.perf_counter()
                futures = [
                    pool.submit(sender, url, raw, (i + 1) * 10_000_000, args.per_sender)
                    for i in range(args.senders)
                ]
                concurrent = [ms for future in futures for ms in future.result()]
                phases[f"concurrent_{args.senders}_senders"] = summary(
                    concurrent,
                    time.perf_counter() - started,
                    cpu_seconds(process.pid) - cpu,
                )
        finally:
            process.terminate()
            process.wait(timeout=60)
    result: dict[str, Any] = {
        **phases,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "how": "sender round trip over HTTP on 127.0.0.1; the 202 comes after the SQLite commit",
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
