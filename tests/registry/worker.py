"""A registry client in its own process, for the concurrency and crash tests.

    python -m tests.registry.worker publish URI CACHE NAME SEED GO_FILE
    python -m tests.registry.worker promote URI CACHE NAME VERSION ALIAS GO_FILE
    python -m tests.registry.worker crash   URI CACHE NAME SEED

S3 settings come from the environment (AWS_ENDPOINT_URL, credentials), as for any boto3
program. ``publish``/``promote`` print ``ready``, wait for GO_FILE to appear (so that all
workers start at once), do their one operation and print its result as JSON.
``crash`` publishes but stops right before the manifest write, after the blob upload:
it prints ``paused`` and sleeps until the test kills it with SIGKILL.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from registry import Registry
from tests.registry.helpers import make_model


def wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"worker: {path} never appeared")
        time.sleep(0.002)


def main(argv: list[str]) -> int:
    cmd, uri, cache = argv[0], argv[1], Path(argv[2])
    reg = Registry.open(uri, cache_dir=cache)
    if cmd == "publish":
        name, seed, go = argv[3], int(argv[4]), Path(argv[5])
        model = make_model(seed)
        print("ready", flush=True)
        wait_for(go)
        m = reg.publish(model, name, lineage={"worker_seed": seed})
        print(json.dumps({"version": m.version, "digest": m.digest}), flush=True)
    elif cmd == "promote":
        name, version, alias, go = argv[3], int(argv[4]), argv[5], Path(argv[6])
        print("ready", flush=True)
        wait_for(go)
        rec = reg.promote(name, version, alias).record
        print(json.dumps(rec.to_dict()), flush=True)
    elif cmd == "crash":
        name, seed = argv[3], int(argv[4])
        real_put = reg.store.put

        def put(key: str, data: bytes, **kw: Any) -> str:
            if "/versions/" in key:  # the blob is already uploaded: die here
                print("paused", flush=True)
                time.sleep(600)
            return real_put(key, data, **kw)

        reg.store.put = put  # type: ignore[method-assign]
        reg.publish(make_model(seed), name)
        print("not killed?", flush=True)
        return 1
    else:
        raise SystemExit(f"unknown command {cmd!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
