"""The local MongoDB-protocol server (deploy/mongo-local, started by scripts/infra.sh) as a
process the fault runs and the durability test may stop, kill and start again."""

import os
import signal
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pymongo import MongoClient

JAR = "mongo-local.jar"


@dataclass
class LocalMongo:
    pid: int
    command: list[str]
    cwd: str
    url: str
    log: str | None = None  # where its output goes, kept across restarts

    @classmethod
    def find(cls, mongodb_url: str) -> "LocalMongo | None":
        """The mongo-local process of this machine serving `mongodb_url`, if there is one."""
        address = urlsplit(mongodb_url)
        if address.hostname not in ("127.0.0.1", "localhost"):
            return None
        port = str(address.port or 27017)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                arguments = [part.decode() for part in (entry / "cmdline").read_bytes().split(b"\0")[:-1]]
                if any(argument.endswith(JAR) for argument in arguments) and _argument(arguments, "--port") == port:
                    output = os.readlink(entry / "fd" / "1")
                    log = output if Path(output).is_file() else None
                    return cls(int(entry.name), arguments, os.readlink(entry / "cwd"), mongodb_url, log)
            except (OSError, UnicodeDecodeError):
                continue
        return None

    def private_copy(self, port: int, data_file: Path) -> "LocalMongo":
        """Another server like this one (not started yet), on `port` with its own data file."""
        command = list(self.command)
        command[command.index("--port") + 1] = str(port)
        command[command.index("--file") + 1] = str(data_file)
        return LocalMongo(0, command, str(data_file.parent), f"mongodb://127.0.0.1:{port}/")

    def stop(self, patience: float = 30) -> tuple[float, bool]:
        """SIGTERM (it closes its data file); SIGKILL if it is still there after `patience`
        seconds. Returns the seconds until it was gone and whether it had to be killed."""
        started = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        killed = not self._exited_within(patience)
        if killed:
            self.kill()
        return time.monotonic() - started, killed

    def kill(self) -> None:
        """SIGKILL: no chance to write anything more."""
        os.kill(self.pid, signal.SIGKILL)
        assert self._exited_within(10), f"mongo-local {self.pid} survived SIGKILL"

    def _exited_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._running() and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._running()

    def _running(self) -> bool:
        # one this process restarted is its child: once exited it stays in /proc as a zombie
        # until reaped
        with suppress(ChildProcessError):
            os.waitpid(self.pid, os.WNOHANG)
        try:
            status = Path(f"/proc/{self.pid}/stat").read_text()
        except FileNotFoundError:
            return False
        return status.rsplit(")", 1)[1].split()[0] != "Z"

    def start(self, timeout: float = 60) -> None:
        """The same command in the same folder; returns once it answers."""
        with open(self.log or os.devnull, "ab") as log:
            process = subprocess.Popen(self.command, cwd=self.cwd, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        self.pid = process.pid
        deadline = time.monotonic() + timeout
        while True:
            try:
                with MongoClient(self.url, serverSelectionTimeoutMS=1000) as client:
                    client.admin.command("ping")
                return
            except Exception:
                if time.monotonic() > deadline or not self._running():
                    raise
                time.sleep(0.2)


def _argument(arguments: list[str], name: str) -> str | None:
    for index, argument in enumerate(arguments[:-1]):
        if argument == name:
            return arguments[index + 1]
    return None
