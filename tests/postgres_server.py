"""A throw-away PostgreSQL cluster on a free loopback port, for tests and benchmarks.

``initdb`` in a temporary folder, ``pg_ctl start`` with ``listen_addresses=127.0.0.1``,
trust authentication (loopback only, the folder is removed at stop). PostgreSQL refuses to
run as root, so as root the cluster belongs to the ``postgres`` user. The binaries are found
with ``pg_config --bindir``, ``$SUPPORTDESK_PG_BINDIR`` or ``/usr/lib/postgresql/*/bin``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries, or the cluster would not start: says which."""


def _bindir() -> Path:
    for candidate in [os.environ.get("SUPPORTDESK_PG_BINDIR", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                                                          reverse=True)]:
        if candidate and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresUnavailable("no PostgreSQL server binaries (initdb) in /usr/lib/postgresql/*/bin or on PATH; "
                              "install postgresql (Debian: apt install postgresql-15) or set SUPPORTDESK_PG_BINDIR")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self, database: str = "supportdesk") -> None:
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="supportdesk-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.database = database
        self._as_root = os.geteuid() == 0
        self.user = "postgres" if self._as_root else (os.environ.get("USER") or "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if check and done.returncode != 0:
            raise PostgresUnavailable(f"{args[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done

    def start(self) -> PostgresServer:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.user, "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=100 "
                   "-c shared_buffers=32MB")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "-t", "60", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database)
        return self

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def kill(self) -> None:
        """Stop the server abruptly, keeping its files (a lost database in the middle of work)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)

    def restart(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=100 "
                   "-c shared_buffers=32MB")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "-t", "60", "start")

    def wait_ready(self, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise PostgresUnavailable(f"PostgreSQL on port {self.port} did not become ready in {seconds:.0f} s")
