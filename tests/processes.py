"""Real tasklane processes for end-to-end tests: uvicorn web workers and `dramatiq workers`, started
from the same commands the Procfile uses, with their JSON logs captured to files."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.support import free_port, wait_until

BIN = Path(sys.executable).parent
ROOT = Path(__file__).parents[1]
_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def procfile_argv(kind: str, env: dict[str, str]) -> list[str]:
    """The Procfile's command for `kind` (web, worker), its ${NAME:-default}s filled from `env`, the program
    taken from this virtualenv: tests run exactly what a deployment runs (flags included)."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == kind:
            expanded = _VARIABLE.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), command)
            argv = shlex.split(expanded)
            if argv[0] == "exec":  # the shell a Procfile runner uses gives way to the command itself
                argv = argv[1:]
            return [str(BIN / argv[0]), *argv[1:]]
    raise KeyError(f"no {kind!r} process in the Procfile")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_bytes().splitlines():
            try:
                lines.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                lines.append({"raw": raw.decode(errors="replace")})
        return lines

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the process and every child of it: a crash, with no chance to clean up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def group(self) -> list[int]:
        """Pids still in this process's group (it leads one: started in a session of its own)."""
        return group_pids(self.popen.pid)

    def stop_group(self, *signals: int, gap: float = 0.0, timeout: float = 30) -> tuple[int | str, float]:
        """As a platform stops a container: each signal to every process of the group (`gap` s apart), then
        wait until no process of it is left. Returns the leader's exit code ("timeout" if any process was
        still alive after `timeout` s; the group is then SIGKILLed) and the seconds the group took."""
        started = time.monotonic()
        for n, sig in enumerate(signals or (signal.SIGTERM,)):
            if n:
                time.sleep(gap)  # the platform's own gap between its signals: part of the scenario
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
        deadline = started + timeout
        while self.popen.poll() is None or self.group():
            if time.monotonic() > deadline:
                self.kill()
                return "timeout", time.monotonic() - started
            time.sleep(0.02)  # the poll interval, not a wait for anything
        return self.popen.returncode, time.monotonic() - started

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode


@dataclass
class Stack:
    env: dict[str, str]
    workdir: Path
    processes: list[Process] = field(default_factory=list)

    def _start(
        self, name: str, argv: list[str], extra_env: dict[str, str] | None = None, private: Sequence[Path] = ()
    ) -> Process:
        if private:
            argv = private_disk(argv, private)
        log_path = self.workdir / f"{name}-{len(self.processes)}.log"
        handle = log_path.open("wb")
        popen = subprocess.Popen(
            argv,
            env={**self.env, **(extra_env or {})},
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).parents[1],
            # Its own process group, so a test can kill a process with all its children at once.
            start_new_session=True,
        )
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    def web(
        self, workers: int = 1, extra_env: dict[str, str] | None = None, private: Sequence[Path] = ()
    ) -> tuple[Process, str]:
        """The Procfile's web command (uvicorn with its flags) on a free port of 127.0.0.1; each folder in
        `private` is one only this process sees (see `private_disk`)."""
        port = free_port()
        env = {**self.env, **(extra_env or {})}
        settings = {"HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers), "GRACEFUL_TIMEOUT": "20"}
        argv = procfile_argv("web", {**env, **settings})
        process = self._start("web", argv, {**(extra_env or {}), **settings}, private)
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, process)
        return process, url

    def worker(
        self,
        processes: int = 1,
        threads: int = 2,
        extra_env: dict[str, str] | None = None,
        private: Sequence[Path] = (),
    ) -> Process:
        """The Procfile's worker command (`dramatiq workers`) with this many processes and threads."""
        env = {**self.env, **(extra_env or {}), "WORKER_PROCESSES": str(processes), "WORKER_THREADS": str(threads)}
        process = self._start("worker", procfile_argv("worker", env), extra_env, private)

        def ready() -> bool:
            if process.popen.poll() is not None:
                raise RuntimeError(f"worker exited:\n{process.text()[-3000:]}")
            return "Worker process is ready" in process.text() or "is ready for action" in process.text()

        try:
            wait_until(ready, "the worker to start", 30)
        except AssertionError:
            raise RuntimeError(f"worker did not start:\n{process.text()[-3000:]}") from None
        return process

    def honcho(self, *kinds: str, extra_env: dict[str, str] | None = None) -> tuple[Process, int]:
        """`honcho start -f Procfile <kinds>` as `make run` starts it (the Procfile's commands through a shell,
        each in a session of its own); the web process listens on the port returned."""
        port = free_port()
        env = {**self.env, **(extra_env or {}), "PATH": f"{BIN}:{self.env.get('PATH', '')}", "HOST": "127.0.0.1"}
        argv = [str(BIN / "honcho"), "start", "-f", str(ROOT / "Procfile"), "-p", str(port), *kinds]
        return self._start("honcho", argv, env), port

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def kill_all(self) -> None:
        for process in reversed(self.processes):
            if process.popen.poll() is None:
                process.kill()


@contextmanager
def running_stack(workdir: Path, *, graceful: bool = True, **env: str) -> Iterator[Stack]:
    """A Stack whose processes are all stopped when the block ends, whatever happened in it: with
    SIGTERM (graceful), or SIGKILL for tests that leave processes in states not worth waiting for."""
    stack = Stack(stack_env(**env), workdir)
    try:
        yield stack
    finally:
        stack.stop_all() if graceful else stack.kill_all()


def private_disk(argv: list[str], folders: Sequence[Path]) -> list[str]:
    """`argv` run in a mount namespace of its own where each of `folders` is an empty tmpfs: a disk no other
    process sees, as each container of a platform has (needs root, as tests and CI run here). The command
    is exec'd, so it keeps the pid (and process group) it was started with."""
    mounts = " && ".join(f"mount -t tmpfs tmpfs {shlex.quote(str(folder))}" for folder in folders)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh", *argv]


def mount_namespace(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/mnt")


def group_pids(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after the command name (which may hold spaces): state, ppid, pgrp, ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def wait_until_ready(url: str, process: Process, timeout: float = 30) -> None:
    def ready() -> bool:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{process.text()[-3000:]}")
        try:
            return httpx.get(f"{url}/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, f"{process.name} to be ready", timeout)
    except AssertionError:
        raise RuntimeError(f"{process.name} not ready in {timeout}s:\n{process.text()[-3000:]}") from None


def stack_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env
