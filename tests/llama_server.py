"""llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) on a free loopback port:
a real server process, started and stopped by the tests of the 'openai' backend."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from supportdesk.models.openai_backend import llama_cpp_python_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    def __init__(self, workdir: Path, models: dict, api_key: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        config = llama_cpp_python_config(models["base"], models["served"], port=self.port, api_key=api_key)
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / f"server-{self.port}.json"
        self.config.write_text(json.dumps(config))
        self.log = workdir / f"server-{self.port}.log"
        self.api_key = api_key
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> LlamaServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supportdesk.models.llama_amx", "--config_file", str(self.config)],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/models", headers=headers, timeout=1.0).status_code in (200, 401):
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama.cpp server did not answer in {timeout:g} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


def model_entries(gguf: Path, base_alias: str, adapters: dict[str, Path]) -> dict:
    """The base under ``base_alias`` and each adapter under its own name."""
    return {"base": gguf, "served": {base_alias: None, **adapters}}
