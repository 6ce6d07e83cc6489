"""A private tgtd (Linux SCSI target daemon) on 127.0.0.1 with one file-backed LUN: the test target.

:class:`Tgtd` starts ``tgtd -f`` with its own management port (``-C``) and its
own iSCSI portal port, so parallel runs never meet; creates the target, a
sparse LUN file and the ACL; and stops it with SIGKILL by the pid it started
(tgtd ignores SIGTERM; nothing is ever killed by name).  Traffic stays on
loopback.  Needs root and Debian's ``tgt`` package (``scripts/install``).

    with Tgtd(tmp_path) as target:
        disk = open_device(target.url, initiator="iqn.2026-01.test:node0")
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from wolfpack.hw.errors import DeviceFailed

TARGET_IQN = "iqn.2026-01.org.wolfpack.test:quorum"
LUN = 1
START_TIMEOUT_S = 10.0


def available() -> str | None:
    """Why a private tgtd cannot run here, or None when it can."""
    if shutil.which("tgtd") is None or shutil.which("tgtadm") is None:
        return "tgtd/tgtadm are not installed (Debian package tgt; scripts/install adds it)"
    if os.geteuid() != 0:
        return "tgtd needs root"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Tgtd:
    """One tgtd process serving ``TARGET_IQN`` LUN 1 (``size_mb`` MiB, a sparse file in ``workdir``).

    By default on 127.0.0.1 at a free port; ``host`` and ``prefix`` put it elsewhere, e.g. on a test
    network namespace's address (``prefix=["ip", "netns", "exec", NS]``, port 3260)."""

    def __init__(self, workdir: Path, *, size_mb: int = 64, host: str = "127.0.0.1",
                 prefix: list[str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.size_mb = size_mb
        self.host = host
        self.prefix = list(prefix or [])
        self.port = 0
        self.control = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.luns = 0

    @property
    def portal(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"iscsi://{self.portal}/{TARGET_IQN}/{LUN}"

    def new_lun(self, size_mb: int | None = None) -> str:
        """Add a fresh LUN (its own sparse file, no reservations) and return its URL."""
        self.luns += 1
        number = LUN + self.luns
        image = self.workdir / f"lun{number}.img"
        with open(image, "wb") as f:
            f.truncate((size_mb or self.size_mb) << 20)
        self._adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", str(number), "-b", str(image))
        return f"iscsi://{self.portal}/{TARGET_IQN}/{number}"

    def _adm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["tgtadm", "-C", str(self.control), "--lld", "iscsi", *args],
                              capture_output=True, text=True, timeout=10)
        if check and done.returncode:
            raise DeviceFailed(f"tgtadm {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}; "
                               f"see {self.workdir / 'tgtd.log'}")
        return done

    def start(self) -> Tgtd:
        problem = available()
        if problem:
            raise DeviceFailed(f"cannot start the test target: {problem}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        image = self.workdir / "lun1.img"
        with open(image, "wb") as f:
            f.truncate(self.size_mb << 20)
        self.port = _free_port() if not self.prefix else 3260  # a namespace of its own has the port free
        self.control = random.randrange(1_000, 32_000)  # tgtd takes -C up to 32767
        log = open(self.workdir / "tgtd.log", "wb")  # noqa: SIM115 - tgtd writes it until killed
        self.process = subprocess.Popen([*self.prefix, "tgtd", "-f", "-C", str(self.control), "--iscsi",
                                         f"portal={self.portal}"], stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        log.close()
        (self.workdir / "tgtd.pid").write_text(f"{self.process.pid}\n")
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._adm("--op", "show", "--mode", "target", check=False).returncode:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise DeviceFailed(f"tgtd did not start on {self.portal} (control port {self.control}); "
                                   f"see {self.workdir / 'tgtd.log'}")
            time.sleep(0.02)
        self._adm("--op", "new", "--mode", "target", "--tid", "1", "-T", TARGET_IQN)
        self._adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", str(LUN), "-b", str(image))
        self._adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
        return self

    def pause(self) -> None:
        """SIGSTOP: a hung target (commands get no answer until :meth:`resume`)."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGKILL by pid (tgtd ignores SIGTERM), then reap it."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def __enter__(self) -> Tgtd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
