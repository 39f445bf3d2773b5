"""`WORKERS=N`: N supervisor processes on one listening socket, to use every core of the machine.

One Python process uses one core. Each worker is a full replica with its own identity, locks and pool:
the locker already spreads tenants across replicas and any replica serves any tenant's webhooks, so
workers need no new coordination, only a shared socket. The first process binds the port (as always,
before anything heavy loads), then starts workers 1..N-1 with the listening socket inherited; the
kernel hands each connection to one of them.

The first process also keeps its workers: one that exits is started again (with backoff), SIGTERM is
passed on to all of them, and it exits only after they have drained. A worker whose first process is
gone (killed with -9) stops itself, so no orphan keeps the port.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from dataclasses import dataclass, field

from shared import strict

__all__ = ["LIFELINE_FD_ENV", "LISTEN_FD_ENV", "Workers", "parse_workers", "watch_parent"]

LISTEN_FD_ENV = "SUPERVISOR_LISTEN_FD"  # set for workers 1..N-1: the inherited listening socket
LIFELINE_FD_ENV = "SUPERVISOR_LIFELINE_FD"  # read end of a pipe the first process holds open


def parse_workers(raw: str | None) -> int | None:
    """WORKERS: unset for 1, `auto` for one per CPU, or 1..64; None when invalid."""
    return strict.workers(raw, os.cpu_count())


@dataclass
class Workers:
    listener: socket.socket
    count: int
    base_name: str
    _children: dict[int, asyncio.subprocess.Process] = field(default_factory=dict)
    _stopping: bool = False
    # Workers read the lifeline; nothing is ever written: its end of file says this process is gone.
    _lifeline: tuple[int, int] = field(default_factory=os.pipe)

    def name(self, index: int) -> str:
        return f"{self.base_name}-w{index}"

    async def keep(self) -> None:
        """Start workers 1..N-1 and start any that exits again, until stop()."""
        await asyncio.gather(*(self._keep_one(i) for i in range(1, self.count)))

    async def _keep_one(self, index: int) -> None:
        # Imported here: `run` binds its port and answers /health before aiogram (seconds) is loaded.
        from aiogram.utils.backoff import Backoff, BackoffConfig

        backoff = Backoff(BackoffConfig(min_delay=1.0, max_delay=30.0, factor=2.0, jitter=0.2))
        while not self._stopping:
            child = await self._spawn(index)
            self._children[index] = child
            if self._stopping:  # stop() came while this one was starting
                child.send_signal(signal.SIGTERM)
            code = await child.wait()
            if self._stopping:
                return
            print(f"worker {self.name(index)} exited with {code}; starting it again", file=sys.stderr, flush=True)
            await asyncio.sleep(next(backoff))

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        fd, lifeline = self.listener.fileno(), self._lifeline[0]
        env = {
            **os.environ,
            LISTEN_FD_ENV: str(fd),
            LIFELINE_FD_ENV: str(lifeline),
            "INSTANCE_NAME": self.name(index),
            "WORKERS": "1",
        }
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "supervisor",
            "run",
            env=env,
            pass_fds=(fd, lifeline),
            stdin=asyncio.subprocess.DEVNULL,
        )

    def stop(self) -> None:
        """Pass SIGTERM on: every worker releases its locks and drains, as the first process does."""
        self._stopping = True
        for child in self._children.values():
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float) -> None:
        """Wait for the workers to exit; kill those still running after `timeout`."""
        self.stop()
        running = [c for c in self._children.values() if c.returncode is None]
        if not running:
            return
        _, late = await asyncio.wait([asyncio.ensure_future(c.wait()) for c in running], timeout=timeout)
        if late:
            for child in running:
                if child.returncode is None:
                    child.kill()
            await asyncio.gather(*(c.wait() for c in running))


def watch_parent(lifeline_fd: int) -> None:
    """In a worker: once the first process is gone (the write end of the lifeline closes with it, even
    after kill -9), stop this one the graceful way: SIGTERM to self."""
    loop = asyncio.get_running_loop()

    def parent_gone() -> None:
        loop.remove_reader(lifeline_fd)
        os.kill(os.getpid(), signal.SIGTERM)

    loop.add_reader(lifeline_fd, parent_gone)
