"""Backing services a fault-injection test owns, so it can stop, kill and restart them without touching the
shared PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) that other test runs use at the same time:

    OwnRedis       a `redis-server` subprocess on a free port, no persistence (a restart comes back empty)
    OwnPostgres    a PostgreSQL cluster of its own (Debian's pg_createcluster), trust auth on 127.0.0.1

Both are always torn down (context managers), and leftovers of a run that died without cleaning up (its
pytest process gone) are removed by the next run: every name carries the owning process id.

Also here: resident memory of a process tree read from /proc, sampled in the background.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from service.storage import process_alive as _alive
from tests.support import free_port, wait_until

OWNER = os.getpid()
PG_PREFIX = "tl_resil_"
REDIS_PREFIX = "tl_resil_redis_"
PG_CTL = ["pg_ctlcluster", "--skip-systemctl-redirect"]


def _owned_by_live_run(name: str, prefix: str) -> bool:
    """Names are <prefix><owner pid>_<suffix>; True while that pytest process still runs."""
    match = re.match(re.escape(prefix) + r"(\d+)_", name)
    if not match:
        return False
    pid = int(match.group(1))
    if not _alive(pid):
        return False
    with contextlib.suppress(OSError):
        return b"pytest" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


def wait_port(port: int, timeout: float = 15.0, up: bool = True) -> None:
    def reached() -> bool:
        with socket.socket() as s:
            s.settimeout(0.2)
            return (s.connect_ex(("127.0.0.1", port)) == 0) == up

    wait_until(reached, f"port {port} to go {'up' if up else 'down'}", timeout)


def _die_with_parent() -> None:
    # Linux: the child gets SIGKILL if the pytest process that started it dies without cleaning up.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# --- Redis ---------------------------------------------------------------------------------------------


def remove_stale_redis() -> list[int]:
    """Kill redis-server processes left by a run of this suite whose pytest process is gone. Redis rewrites
    its command line, but it runs in the --dir it was given: the directory names the run that owns it."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("redis-server"):
                continue
            name = Path(os.readlink(entry / "cwd")).name
        except OSError:
            continue
        if name.startswith(REDIS_PREFIX) and not _owned_by_live_run(name, REDIS_PREFIX):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    for path in Path(tempfile.gettempdir()).glob(f"{REDIS_PREFIX}*"):
        if not _owned_by_live_run(path.name, REDIS_PREFIX):
            shutil.rmtree(path, ignore_errors=True)
    return killed


@dataclass
class OwnRedis:
    """A redis-server of this test's own, without persistence: stopped and started again it is empty."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    tls: bool = False  # TLS only, with a self-signed certificate, as platforms offer Redis

    def __post_init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"{REDIS_PREFIX}{OWNER}_"))

    @property
    def url(self) -> str:
        if self.tls:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_cert_reqs=none"
        return f"redis://127.0.0.1:{self.port}/0"

    def _tls_options(self) -> list[str]:
        cert, key = self.dir / "cert.pem", self.dir / "key.pem"
        _run([
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ])  # fmt: skip
        return [
            "--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
        ]  # fmt: skip

    def start(self) -> OwnRedis:
        assert self.process is None or self.process.poll() is not None, "already running"
        ports = self._tls_options() if self.tls else ["--port", str(self.port)]
        argv = [
            "redis-server", *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, preexec_fn=_die_with_parent)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        """Stop it (SIGTERM, no save): every key, queue and script is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        wait_port(self.port, up=False)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> OwnRedis:
        remove_stale_redis()
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- PostgreSQL ----------------------------------------------------------------------------------------


def pg_version() -> str:
    versions = sorted((p.name for p in Path("/etc/postgresql").iterdir() if p.name[:1].isdigit()), key=float)
    if not versions:
        raise RuntimeError("no PostgreSQL installation under /etc/postgresql")
    return versions[-1]


def _run(argv: list[str], timeout: float = 60) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def remove_stale_clusters() -> list[str]:
    """Drop clusters of this suite whose pytest process is gone (a run that crashed before cleaning up)."""
    version = pg_version()
    dropped = []
    for path in Path(f"/etc/postgresql/{version}").iterdir():
        if path.name.startswith(PG_PREFIX) and not _owned_by_live_run(path.name, PG_PREFIX):
            subprocess.run(["pg_dropcluster", "--stop", version, path.name], capture_output=True, check=False)
            dropped.append(path.name)
    return dropped


@dataclass
class OwnPostgres:
    """A PostgreSQL cluster of this test's own, on a free port, trust auth for postgres on 127.0.0.1."""

    port: int = field(default_factory=free_port)
    name: str = field(default_factory=lambda: f"{PG_PREFIX}{OWNER}_{os.urandom(3).hex()}")
    created: bool = False

    def __post_init__(self) -> None:
        self.version = pg_version()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create(self) -> OwnPostgres:
        _run(
            [
                "pg_createcluster", self.version, self.name, "-p", str(self.port),
                # Disposable: no durability needed, and a faster start.
                "-o", "fsync=off", "-o", "full_page_writes=off",
                "--", "--auth=trust", "--no-sync",
            ]
        )  # fmt: skip
        self.created = True
        hba = Path(f"/etc/postgresql/{self.version}/{self.name}/pg_hba.conf")
        if "127.0.0.1/32            trust" not in hba.read_text():
            hba.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        return self

    def start(self) -> None:
        _run([*PG_CTL, self.version, self.name, "start"])
        self.wait_ready()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: open sessions are terminated, as in a real restart)."""
        _run([*PG_CTL, self.version, self.name, "stop", "-m", mode])
        wait_port(self.port, up=False)

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            argv = ["pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-q"]
            return subprocess.run(argv, capture_output=True, check=False).returncode == 0

        wait_until(ready, f"cluster {self.name} to be ready", timeout)

    def drop(self) -> None:
        if self.created:
            subprocess.run(["pg_dropcluster", "--stop", self.version, self.name], capture_output=True, check=False)
            self.created = False

    def __enter__(self) -> OwnPostgres:
        remove_stale_clusters()
        try:
            self.create()
            self.start()
        except BaseException:
            self.drop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()


# --- Memory ------------------------------------------------------------------------------------------


def tree_pids(root: int) -> list[int]:
    """root and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of one process in MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RSSSampler:
    """Samples the resident memory of each process of some process trees every `interval` seconds, in a
    thread; `peak` is the highest single-process RSS seen per tree (MiB)."""

    def __init__(self, roots: dict[str, int], interval: float = 0.05) -> None:
        self.roots = roots
        self.interval = interval
        self.peak: dict[str, float] = dict.fromkeys(roots, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for name, root in self.roots.items():
            for pid in tree_pids(root):
                self.peak[name] = max(self.peak[name], rss_mb(pid))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RSSSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as t: ...` then t[0] is the elapsed seconds."""
    box: list[float] = []
    started = time.monotonic()
    try:
        yield box
    finally:
        box.append(time.monotonic() - started)
