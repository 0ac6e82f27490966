"""What a flood of refused webhooks costs legitimate senders, against what a flood of /healthz costs.

    .venv/bin/python bench/refusals.py [--events 4000] [--flood 12000] [--connections 16]

One `headrace serve` (worker off, SQLite). Three phases, each sending `--events` signed events over
`--connections` connections (fresh webhook ids each time):

1. alone                                   -> baseline legitimate rate
2. while a second load generator floods GET /healthz        -> rate under a health flood
3. while it floods POST /webhooks/dodo with bad signatures  -> rate under a refusal flood

Printed: each rate, and the ratio refusal-flood / health-flood (1.0 means a refusal costs what a health
check costs; the goal is about 1). Also how many rejection rows the store gained in phase 3.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import HEADRACE, free_port, signed_requests, stop, wait_port, write_config
from loadgen import LoadResult, build_request, run_load

from headrace.dodo.signature import sign


def health_requests(port: int, count: int) -> list[bytes]:
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    return [request] * count


def bad_signature_requests(port: int, count: int) -> list[bytes]:
    body = b'{"type": "payment.succeeded", "data": {"payment_id": "pay_x"}}'
    now = int(time.time())
    wrong = sign(b"not the secret, sixteen bytes+", "msg_flood", now, body)
    headers = {"webhook-id": "msg_flood", "webhook-timestamp": str(now), "webhook-signature": wrong}
    return [build_request("127.0.0.1", port, "/webhooks/dodo", body, headers)] * count


def under_flood(
    port: int, legit: list[bytes], flood: list[bytes] | None, c: int
) -> tuple[LoadResult, LoadResult | None]:
    result: dict[str, LoadResult] = {}
    flooder = None
    if flood is not None:
        flooder = threading.Thread(target=lambda: result.__setitem__("flood", run_load("127.0.0.1", port, flood, c)))
        flooder.start()
        time.sleep(0.3)  # let the flood get going first
    legit_result = run_load("127.0.0.1", port, legit, c)
    if flooder is not None:
        flooder.join()
    return legit_result, result.get("flood")


def rejection_rows(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return int(connection.execute("SELECT count(*) FROM rejections").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--flood", type=int, default=12000)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        config = write_config(folder, port, free_port(), worker=False)
        server = subprocess.Popen(
            [*HEADRACE, "serve", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(port)
        try:
            run_load("127.0.0.1", port, signed_requests(port, 1000, "warm"), args.connections)
            alone, _ = under_flood(port, signed_requests(port, args.events, "alone"), None, args.connections)
            health, health_flood = under_flood(
                port, signed_requests(port, args.events, "health"), health_requests(port, args.flood), args.connections
            )
            before = rejection_rows(folder / "bench.db")
            refused, refusal_flood = under_flood(
                port,
                signed_requests(port, args.events, "refused"),
                bad_signature_requests(port, args.flood),
                args.connections,
            )
            rows = rejection_rows(folder / "bench.db") - before
        finally:
            stop(server)
    assert health_flood is not None and refusal_flood is not None
    print(f"legitimate ingest, {args.events} signed events over {args.connections} connections (events/s):")
    print(f"  alone                        {alone.rate:8.0f}")
    print(f"  under a /healthz flood       {health.rate:8.0f}   (flood answered {health_flood.rate:.0f}/s)")
    refusal_rate = refusal_flood.sent / refusal_flood.seconds
    print(
        f"  under a bad-signature flood  {refused.rate:8.0f}   "
        f"(flood answered {refusal_rate:.0f}/s, {rows} rejection rows stored)"
    )
    print(f"ratio refusal flood / health flood: {refused.rate / health.rate:.2f}x")


if __name__ == "__main__":
    main()
