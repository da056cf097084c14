"""Pipeline benchmark: `softmax-pipe run` end to end against the same steps run directly.

What Prefect costs on top of the work itself. One run, one table; wall times are the
median (and min/max) of ``--repeat`` timed runs after one untimed warm-up per row, the
rows interleaved round-robin so that other load on the machine hits them alike, with
the MNIST cache (arrays and deskewed features) already warm for every row.

Rows:
  direct        `softmax-pipe train` + `evaluate --json` + `registry publish --alias champion`:
                three processes, no Prefect
  run (temp)    `softmax-pipe run` with no PREFECT_API_URL: Prefect starts a temporary local
                server in every process (the README's first command)
  run (server)  `softmax-pipe run` against a running `prefect server start`
                (PREFECT_API_URL set): what a deployment or a team setup pays
  in-process    the same library calls (ingest, train, evaluate, publish, promote) and the
                flow call `training_pipeline(...)` timed inside one warm Python process
                (server running): Prefect's per-run orchestration cost alone

The flow does a little more work than the direct path: it pulls the champion and
predicts the test set with it for the McNemar gate (a few hundred ms), and it records
task runs, logs and two artifacts in the Prefect database.

    .venv/bin/python benchmarks/pipeline.py [--source ../shared/data/mnist] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "mnist"
BIN = Path(sys.executable).parent
CLI = str(BIN / "softmax-pipe")


def _env(home: Path, api_url: str | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "SOFTMAX_PIPE_", "AWS_"))
    }
    env["PREFECT_HOME"] = str(home)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _check(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")


def _interleaved(variants: list[Callable[[], None]], repeat: int) -> list[list[float]]:
    """Time each variant ``repeat`` times, round-robin (a load spike hits every row alike),
    after one untimed warm-up each."""
    for fn in variants:
        fn()
    times: list[list[float]] = [[] for _ in variants]
    for _ in range(repeat):
        for fn, out in zip(variants, times, strict=True):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return times


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = _env(home, None)
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("prefect server start did not answer /health within 120 s")


_IN_PROCESS = r"""
import json, sys, time
from pathlib import Path
source, cache, reg_lib, reg_flow, repeat, epochs = sys.argv[1:7]
repeat, epochs = int(repeat), int(epochs)
cache = Path(cache)

def library():
    from registry import Registry
    from softmax_core.mnist import load_mnist
    from dataclasses import replace
    from softmax_core.requests import Hyper
    from softmax_core.train import evaluate, train
    from softmax_core.version import code_version
    ds = load_mnist(source, cache_dir=cache)
    model = train(ds, Hyper(epochs=epochs, seed=0))
    report = evaluate(model, ds)
    info = replace(model.info, metrics={"accuracy": report.accuracy}, code_version=code_version())
    model = model.evolve(info=info)
    with Registry.open(reg_lib, cache_dir=cache) as r:
        m = r.publish(model, "mnist")
        r.promote("mnist", m.version, "champion")

def flow():
    from flows.training import training_pipeline
    from softmax_core.requests import Data, Hyper, Location, Target, TrainingRequest
    where = Location(registry=reg_flow, cache_dir=str(cache))
    training_pipeline(TrainingRequest(
        data=Data(source=source), hyper=Hyper(epochs=epochs), target=Target(location=where)
    ))

out = {"library": {"times": []}, "flow": {"times": []}}
t0 = time.perf_counter(); flow(); out["flow"]["first"] = time.perf_counter() - t0
library()
for _ in range(repeat):
    for name, fn in (("library", library), ("flow", flow)):
        t0 = time.perf_counter(); fn(); out[name]["times"].append(time.perf_counter() - t0)
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default=str(DEFAULT_SOURCE))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="softmax-pipe-bench-"))
    cache = work / "cache"
    common = ["--source", args.source, "--cache-dir", str(cache)]
    epochs = ["--epochs", str(args.epochs)]
    rows: list[tuple[str, list[float]]] = []
    first_flow = float("nan")
    load_before = float("nan")
    server: subprocess.Popen[bytes] | None = None
    try:
        env_plain = _env(work / "prefect-temp", None)
        # Warm the MNIST cache (arrays + deskewed features) for every row alike.
        _check([CLI, "train", *common, "--epochs", "1", "--out", str(work / "warm.npz")], env_plain)

        reg_direct = str(work / "reg-direct")
        model = str(work / "model.npz")

        def direct() -> None:
            _check([CLI, "train", *common, *epochs, "--out", model], env_plain)
            _check([CLI, "evaluate", model, *common, "--json"], env_plain)
            _check(
                [
                    CLI, "registry", "publish", model, "--name", "mnist", "--alias", "champion",
                    "--registry", reg_direct, "--cache-dir", str(cache),
                ],
                env_plain,
            )  # fmt: skip

        reg_temp = str(work / "reg-temp")

        def run_temp() -> None:
            _check([CLI, "run", *common, *epochs, "--registry", reg_temp], env_plain)

        server, url = _start_server(work / "prefect-server")
        env_server = _env(work / "prefect-client", url)
        reg_server = str(work / "reg-server")

        def run_server() -> None:
            _check([CLI, "run", *common, *epochs, "--registry", reg_server], env_server)

        names = [
            "direct: train + evaluate + registry publish",
            "softmax-pipe run, temporary Prefect server",
            "softmax-pipe run, running Prefect server",
        ]
        load_before = os.getloadavg()[0]
        timed = _interleaved([direct, run_temp, run_server], args.repeat)
        rows += list(zip(names, timed, strict=True))

        proc = subprocess.run(
            [
                sys.executable, "-c", _IN_PROCESS, args.source, str(cache),
                str(work / "reg-lib"), str(work / "reg-flow"), str(args.repeat), str(args.epochs),
            ],
            env={**env_server, "PREFECT_LOGGING_LEVEL": "WARNING"},
            capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"in-process timing failed:\n{proc.stderr[-3000:]}")
        inproc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(("in process: library calls, no Prefect", inproc["library"]["times"]))
        rows.append(("in process: training_pipeline() flow call", inproc["flow"]["times"]))
        first_flow = inproc["flow"]["first"]
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)

    base = statistics.median(rows[0][1])
    inproc_base = statistics.median(rows[3][1])
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )
    import prefect

    print(
        f"prefect {prefect.__version__}; {args.epochs} epochs on 60,000 images; "
        f"median of {args.repeat} after a warm-up, variants interleaved; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after\n"
    )
    header = f"| {'variant':<46} | median s | min s | max s | Prefect overhead |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for i, (name, times) in enumerate(rows):
        med = statistics.median(times)
        ref = base if i < 3 else inproc_base
        over = "—" if i in (0, 3) else f"+{med - ref:.2f} s"
        print(f"| {name:<46} | {med:8.2f} | {min(times):5.2f} | {max(times):5.2f} | {over:<16} |")
    print(
        f"\nfirst flow call in a fresh process (imports, client, flow registration): "
        f"{first_flow:.2f} s"
    )


if __name__ == "__main__":
    main()
