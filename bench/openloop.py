"""An open-loop HTTP/1.1 load generator whose own lag is small and reported.

    python bench/openloop.py    (a sender: reads its spec from stdin; run_load starts the senders)

Request i is due at t0 + i / rate whatever happened to the earlier ones, and its latency is measured
from that due time, so a server that falls behind is charged for the queue it builds (no coordinated
omission). The requests are shared round-robin by `senders` processes, each an asyncio loop over
`connections` raw keep-alive sockets opened before the clock starts: no thread pool, no GIL shared
with the other senders, a few tens of microseconds of Python per request.

Each connection takes the next due request as soon as it is free, waits for its due time, writes it
and reads the answer. Three figures per request, from the monotonic clock (shared by the processes):

    latency   done - due                                     what the benchmark reports
    wait      max(0, free - due): no connection was free     queueing caused by slow answers
    lag       sent - max(due, free): the sender was late     the generator's own error

A reader can trust the latencies to within the lag: it is the loop waking late or being descheduled,
never the server. Only the standard library, so a sender starts in a few tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SENDERS = 2
CONNECTIONS = 16  # per sender: enough to absorb a 160 ms stall at 200/s before a request waits
TIMEOUT = 10.0


def _ok(check: str, status: int, body: bytes) -> bool:
    if status != 200:
        return False
    if check == "health":
        return True
    payload: dict[str, Any] = json.loads(body)
    if check == "rpc":
        return "result" in payload and "error" not in payload
    if check == "rpc_map":
        return isinstance(payload.get("result"), dict)
    if check == "jolokia":
        return payload.get("status") == 200
    if check == "jolokia_map":
        return payload.get("status") == 200 and isinstance(payload.get("value"), dict)
    raise ValueError(f"unknown check {check!r}")


def request_bytes(spec: dict[str, Any]) -> tuple[str, int, bytes]:
    """Host, port and the raw request of spec {url, method, body, auth}."""
    url = urlsplit(spec["url"])
    body = json.dumps(spec["body"]).encode() if spec.get("body") is not None else b""
    lines = [f"{spec['method']} {url.path or '/'} HTTP/1.1", f"Host: {url.netloc}"]
    if spec.get("auth"):
        token = base64.b64encode(":".join(spec["auth"]).encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    head = "\r\n".join([*lines, "", ""]).encode()
    return url.hostname or "127.0.0.1", url.port or (443 if url.scheme == "https" else 80), head + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")  # no trailers are sent
        body = b"".join(chunks)
    else:
        body = await reader.read()
        return status, body, False
    return status, body, headers.get("connection", "").lower() != "close"


class Sender:
    """One process's share of the requests, over its own connections."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.host, self.port, self.request = request_bytes(spec)
        # https: the agent's management endpoint, its certificate checked against the node's CA.
        self.tls = (
            ssl.create_default_context(cafile=spec.get("cafile"))
            if urlsplit(spec["url"]).scheme == "https"
            else None
        )
        self.check: str = spec["check"]
        self.connections: int = spec.get("connections", CONNECTIONS)
        self.streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = []

    async def open(self) -> None:
        self.streams = [
            await asyncio.open_connection(self.host, self.port, ssl=self.tls) for _ in range(self.connections)
        ]

    def close(self) -> None:
        for stream in self.streams:
            if stream is not None:
                stream[1].close()

    async def phase(self, dues: list[float]) -> list[tuple[float, float, float, float, bool]]:
        """Send a request at each due time (monotonic, ascending); (due, free, sent, done, ok) each."""
        samples: list[tuple[float, float, float, float, bool]] = []
        pending = iter(dues)

        async def connection(slot: int) -> None:
            for due in pending:  # the next due request, whichever connection is free first
                free = time.monotonic()
                if due > free:
                    await asyncio.sleep(due - free)
                sent = time.monotonic()
                ok = False
                try:
                    stream = self.streams[slot]
                    if stream is None:
                        stream = self.streams[slot] = await asyncio.open_connection(
                            self.host, self.port, ssl=self.tls
                        )
                    stream[1].write(self.request)
                    status, body, keep = await asyncio.wait_for(_read_response(stream[0]), TIMEOUT)
                    done = time.monotonic()
                    ok = _ok(self.check, status, body)
                    if not keep:
                        stream[1].close()
                        self.streams[slot] = None
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                    done = time.monotonic()
                    if self.streams[slot] is not None:
                        self.streams[slot][1].close()  # type: ignore[index]
                        self.streams[slot] = None
                samples.append((due, free, sent, done, ok))

        await asyncio.gather(*(connection(slot) for slot in range(len(self.streams))))
        return samples


def _dues(t0: float, rate: float, count: int, share: int, senders: int) -> list[float]:
    return [t0 + i / rate for i in range(share, count, senders)]


async def _send(spec: dict[str, Any]) -> None:
    sender = Sender(spec)
    rate, senders, share = float(spec["rate"]), int(spec["senders"]), int(spec["share"])
    try:
        await sender.open()
        warmup = max(senders, int(rate * spec["warmup"]))  # connections used, the server's caches warm
        await sender.phase(_dues(time.monotonic(), rate, warmup, share, senders))
        print("ready", flush=True)
        t0 = float(sys.stdin.readline())  # the same start for every sender
        count = max(1, round(rate * float(spec["seconds"])))
        samples = await sender.phase(_dues(t0, rate, count, share, senders))
    finally:
        sender.close()
    print(json.dumps(samples), flush=True)


def sender_main() -> int:
    asyncio.run(_send(json.loads(sys.stdin.readline())))
    return 0


# -- the parent: start the senders, give them one t0, merge their samples --------------------------


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def run_load(spec: dict[str, Any], *, senders: int = SENDERS, timeout: float = 300.0) -> dict[str, Any]:
    """Open-loop load as spec says ({url, method, body, auth, check, rate, seconds, warmup}) from
    `senders` processes; latency figures from the due times, and the generator's own lag."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(senders)
    ]
    try:
        for share, proc in enumerate(procs):
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({**spec, "senders": senders, "share": share}) + "\n")
            proc.stdin.flush()
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a sender failed before the measurement")
        t0 = time.monotonic() + 0.1
        for proc in procs:  # every sender has t0 before any is waited for
            assert proc.stdin is not None
            proc.stdin.write(f"{t0!r}\n")
            proc.stdin.flush()
        samples: list[list[Any]] = []
        for proc in procs:
            output, _ = proc.communicate(timeout=timeout)
            samples += json.loads(output.strip().splitlines()[-1])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    if any(proc.returncode != 0 for proc in procs):
        raise RuntimeError("a sender exited with an error")
    return figures(samples, float(spec["rate"]), t0, senders, spec.get("connections", CONNECTIONS))


def figures(
    samples: list[list[Any]], rate: float, t0: float, senders: int, connections: int
) -> dict[str, Any]:
    ok = [s for s in samples if s[4]]

    def ms(values: list[float]) -> list[float]:
        return sorted(v * 1000 for v in values) or [0.0]

    latency = ms([done - due for due, _, _, done, _ in ok])
    service = ms([done - sent for _, _, sent, done, _ in ok])
    lag = ms([sent - max(due, free) for due, free, sent, _, _ in samples])
    wait = ms([max(0.0, free - due) for due, free, _, _, _ in samples])
    elapsed = max(s[3] for s in samples) - t0
    return {
        "requests": len(samples),
        "errors": len(samples) - len(ok),
        "target_rps": rate,
        "achieved_rps": round(len(ok) / elapsed, 1) if elapsed > 0 else None,
        "p50_ms": round(percentile(latency, 50), 2),
        "p99_ms": round(percentile(latency, 99), 2),
        "max_ms": round(latency[-1], 2),
        # From the request's write, not its due time: the server and the network alone.
        "service_p50_ms": round(percentile(service, 50), 2),
        "service_p99_ms": round(percentile(service, 99), 2),
        # The generator's own lateness, the error bar of the latencies above.
        "send_lag_p50_ms": round(percentile(lag, 50), 3),
        "send_lag_p99_ms": round(percentile(lag, 99), 3),
        "send_lag_max_ms": round(lag[-1], 3),
        # Time a due request waited for a free connection (the server was slow to answer).
        "connection_wait_p99_ms": round(percentile(wait, 99), 2),
        "senders": senders,
        "connections": senders * connections,
    }


if __name__ == "__main__":
    sys.exit(sender_main())
