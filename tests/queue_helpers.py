"""Helpers of the queue-mode tests: the real Redis (a missing one fails, never skips), a unique
stream per test, a Redis server of a test's own to stop and start, consumers as child processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import redis

from helpers import PROJECT, ROOT, TOKEN, wait_for  # wait_for: the queue tests import it from here

REDIS_URL = os.environ.get("SNAPRELABEL_TEST_REDIS", "redis://127.0.0.1:6379/0")
ENV = {"SNAPRELABEL_TOKEN": TOKEN}
# Short waits keep the suite quick; the behaviour under test is the same.
FAST_FLAGS = ("--backoff-base", "0.01", "--backoff-cap", "0.2", "--throttled-backoff", "0.05")


@pytest.fixture
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"queue tests need Redis at {REDIS_URL} (.ci/run starts one): {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def stream(redis_url):
    """A stream name of this test's own; every key under its prefix is deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield f"{prefix}:jobs"
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def sync_client(url: str = REDIS_URL) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def results(client: redis.Redis, stream: str) -> list[dict[str, str]]:
    base = stream.removesuffix(":jobs")
    return [fields for _id, fields in client.xrange(f"{base}:results")]


def dead_letters(client: redis.Redis, stream: str) -> list[dict[str, str]]:
    base = stream.removesuffix(":jobs")
    return [fields for _id, fields in client.xrange(f"{base}:dead")]


def pending_count(client: redis.Redis, stream: str, group: str = "relabel") -> int:
    return client.xpending(stream, group)["pending"]


def enqueue(url: str, stream: str, jobs: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    done = run_worker("enqueue", str(jobs), "--redis", url, "--stream", stream,
                      "--project-id", PROJECT, "--report", str(tmp_path / "rejects.csv"),
                      "--overwrite", *extra)
    assert done.returncode in (0, 1), done.stderr
    return done


def run_worker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=ROOT)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SNAPRELABEL_", "OS_", "HUAWEICLOUD_SDK_"))}
    env.update(ENV)
    return env


class Consumer:
    """`snaprelabel consume` as a child process, its JSON log lines in a file."""

    def __init__(self, tmp_path: Path, url: str, stream: str, endpoint: str, name: str,
                 *extra: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = tmp_path / f"{name}.log"
        self.err_path = tmp_path / f"{name}.err"
        self._out = self.log_path.open("w")
        self._err = self.err_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker", "consume", "--redis", url, "--stream", stream,
             "--endpoint", endpoint, "--consumer", name, "--log-format", "json", *FAST_FLAGS,
             *extra],
            stdout=self._out, stderr=self._err, env={**_env(), **(env or {})}, cwd=ROOT,
        )

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._out.close()
            self._err.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.process.send_signal(sig)

    def events(self) -> list[dict]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stderr(self) -> str:
        return self.err_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.wait(10)


@pytest.fixture
def consumers(tmp_path):
    """Start consumers with `consumers(url, stream, endpoint, name, *flags)`; all are killed at
    the end of the test if still running."""
    started: list[Consumer] = []

    def start(url: str, stream: str, endpoint: str, name: str, *extra: str,
              env: dict[str, str] | None = None) -> Consumer:
        consumer = Consumer(tmp_path, url, stream, endpoint, name, *extra, env=env)
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        consumer.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own on a free port, to stop and start mid-run."""

    def __init__(self, workdir: Path, persistent: bool, *extra: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.persistent = persistent
        self.extra = extra
        self.process: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                       else ["--appendonly", "no"])
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.workdir), *persistence, *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = sync_client(self.url)
        wait_for(lambda: _pings(client), 10, what="redis-server to start")
        client.close()

    def crash(self) -> None:
        """kill -9: what an OOM kill or a node failure does; no shutdown save."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.AuthenticationError:
        return True  # it answers: it wants a password
    except redis.RedisError:
        return False


@pytest.fixture
def redis_server(tmp_path):
    servers: list[RedisServer] = []

    def make(persistent: bool, *extra: str) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", persistent, *extra)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.crash()


class ErrorRedis:
    """A server that answers every command with one Redis error line, as a Redis in protected
    mode does to a client from another host."""

    def __init__(self, error: str) -> None:
        self.reply = f"-{error}\r\n".encode()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.server.getsockname()[1]}/0"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                while conn.recv(65536):
                    conn.sendall(self.reply)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def error_redis():
    servers: list[ErrorRedis] = []

    def make(error: str) -> ErrorRedis:
        servers.append(ErrorRedis(error))
        return servers[-1]

    yield make
    for server in servers:
        server.close()
