"""A Milvus server (milvus-lite, speaking Milvus's own gRPC protocol) on a free loopback port.

The same client code (pymilvus through langchain-milvus) talks to it as to a Milvus cluster.
Started as a process (``milvus-lite server``), so a test can stop it (Milvus down) and start
it again on the same data and port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class MilvusUnavailableForTests(RuntimeError):
    """milvus-lite is missing or did not start: says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MilvusServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="supportdesk-milvus-"))
        self.port = free_port()
        self._process: subprocess.Popen[str] | None = None
        self._log = self.root / "server.log"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, seconds: float = 60.0) -> MilvusServer:
        executable = Path(sys.executable).with_name("milvus-lite")
        command = [str(executable)] if executable.exists() else [sys.executable, "-m", "milvus_lite"]
        with self._log.open("a") as log:
            self._process = subprocess.Popen(
                [*command, "server", "--data-dir", str(self.root / "data"), "--host", "127.0.0.1",
                 "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT, text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise MilvusUnavailableForTests(f"milvus-lite exited ({self._process.returncode}): "
                                                f"{self._log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop_process()
        raise MilvusUnavailableForTests(f"milvus-lite did not listen on port {self.port} in {seconds:.0f} s")

    def stop_process(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def stop(self) -> None:
        self.stop_process()
        shutil.rmtree(self.root, ignore_errors=True)
