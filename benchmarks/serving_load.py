"""Load on `gru-suite serve`: N concurrent REST clients per app against the same calls in-process.

For each app, `--clients` clients on 127.0.0.1 each send one-instance
`:predict` requests (the app's `serving_example`, in the row format) back to
back for `--seconds` (or until `--max-requests`), to a `gru-suite serve`
started in its own process with its defaults (two model calls at a time).
Then the same signature is called in this process, without HTTP or JSON, from
as many threads for as long. Printed per app: requests per second, p50 and
p99 latency, errors (non-200 answers; there must be none), and the
in-process figures, so the server's overhead is a ratio.

    python benchmarks/serving_load.py [--models DIR] [--clients 8] [--seconds 10]
        [--max-requests 5000] [--apps sentiment,speech]

Without `--models`, each app's `reproduce --quick` export is trained into a
temporary folder first (a few minutes). The clients share the machine's cores
with the server, as a client on the same host does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from apps.common.app import Export, signature_inputs  # noqa: E402
from apps.common.running import load_export, registered_app, train_app  # noqa: E402
from apps.registry import REGISTRY, load_app_packages  # noqa: E402


class Run:
    """Latencies (seconds) of the calls made in `elapsed` seconds, and how many failed."""

    def __init__(self, latencies: list[float], elapsed: float, errors: int):
        self.latencies, self.elapsed, self.errors = np.array(latencies), elapsed, errors

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000)


def train_quick_exports(root: Path, apps: list[str], extra_args: tuple[str, ...] = ()) -> None:
    """Trains each app's `reproduce --quick` export under `root`, with `extra_args` appended."""
    for name in apps:
        app = registered_app(name)
        train_app(name, [*app.quick_args, *extra_args, "--verbose", "0", "--export-dir", str(root)])


def start_server(models: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "apps.cli", "serve", "--models", str(models),
                                "--port", str(port), "--poll-seconds", "60"], stderr=subprocess.DEVNULL)
    return process, f"http://127.0.0.1:{port}"


def wait_until_serving(url: str, apps: list[str], process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            sys.exit(f"serving_load: the server stopped (exit status {process.returncode})")
        try:
            if all(httpx.get(f"{url}/v1/models/{name}").status_code == 200 for name in apps):
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"serving_load: the server did not serve {', '.join(apps)} within {timeout:.0f} s")
        time.sleep(1)


async def http_load(url: str, model: str, body: bytes, clients: int, seconds: float, max_requests: int) -> Run:
    latencies: list[float] = []
    errors = 0
    path = f"/v1/models/{model}:predict"
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=clients)) as client:
        for _ in range(3):  # warm-up
            await client.post(path, content=body, headers=headers)
        deadline = time.perf_counter() + seconds

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline and len(latencies) < max_requests:
                start = time.perf_counter()
                answer = await client.post(path, content=body, headers=headers)
                latencies.append(time.perf_counter() - start)
                errors += answer.status_code != 200

        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        return Run(latencies, time.perf_counter() - start, errors)


def in_process_load(export: Export, example: dict, threads: int, seconds: float, max_requests: int) -> Run:
    function = export.signature()
    specs = signature_inputs(function)
    inputs = {name: tf.constant([value], specs[name].dtype) for name, value in example.items()}
    for _ in range(3):
        function(**inputs)
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def caller() -> None:
        while time.perf_counter() < deadline and len(latencies) < max_requests:
            start = time.perf_counter()
            function(**inputs)
            with lock:
                latencies.append(time.perf_counter() - start)

    workers = [threading.Thread(target=caller) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return Run(latencies, time.perf_counter() - start, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, help="a models folder (default: train quick exports first)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=5000)
    parser.add_argument("--apps", default=",".join(REGISTRY.apps()))
    args = parser.parse_args()
    apps = [name for name in args.apps.split(",") if name]
    unknown = sorted(set(apps) - set(REGISTRY.apps()))
    if unknown or args.clients < 1 or args.seconds <= 0 or args.max_requests < 1:
        parser.error(f"unknown app(s) {', '.join(unknown)}" if unknown else
                     "--clients, --seconds and --max-requests must be positive")

    with tempfile.TemporaryDirectory(prefix="serving-load-") as scratch:
        models = args.models
        if models is None:
            models = Path(scratch) / "models"
            os.chdir(scratch)  # training's run folders go there too
            train_quick_exports(models, apps)
        process, url = start_server(models)
        try:
            wait_until_serving(url, apps, process)
            rows = []
            for name in apps:
                export = load_export(registered_app(name), models / name)
                example = registered_app(name).serving_example(export)
                body = json.dumps({"instances": [example]}).encode()
                served = asyncio.run(http_load(url, name, body, args.clients, args.seconds, args.max_requests))
                local = in_process_load(export, example, args.clients, args.seconds, args.max_requests)
                rows.append((name, served, local))
                print(f"{name}: {served.rps:.1f} req/s over HTTP, {local.rps:.1f} calls/s in-process", flush=True)
        finally:
            process.terminate()
            process.wait(30)

    print(f"\n{args.clients} clients, {args.seconds:g} s per app, one instance per request "
          f"({time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs)\n")
    print("| app | HTTP req/s | p50 ms | p99 ms | errors | in-process calls/s | p50 ms | p99 ms "
          "| HTTP / in-process throughput |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, served, local in rows:
        print(f"| {name} | {served.rps:.1f} | {served.percentile_ms(50):.1f} | {served.percentile_ms(99):.1f} "
              f"| {served.errors} | {local.rps:.1f} | {local.percentile_ms(50):.1f} | {local.percentile_ms(99):.1f} "
              f"| {served.rps / local.rps:.2f} |")
    if any(served.errors for _, served, _ in rows):
        sys.exit("serving_load: some requests failed")


if __name__ == "__main__":
    load_app_packages()
    main()
