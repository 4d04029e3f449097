"""Faults for the fault runs: restart the local RabbitMQ node, stop and start the local
MongoDB-protocol server. Only for servers running on this machine (CI and scripts/infra.sh);
`unavailable` says why they cannot be used otherwise."""

import os
import shutil
import signal
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pymongo import MongoClient

from services.ops import index_id_lookups


def unavailable(mongodb_url: str) -> str | None:
    """Why the servers cannot be faulted from here, or None."""
    if shutil.which("rabbitmqctl") is None or subprocess.run(["rabbitmqctl", "-q", "status"], capture_output=True).returncode:
        return "no local RabbitMQ node to restart (rabbitmqctl status fails)"
    if FerretDB.find(mongodb_url) is None:
        return f"no local FerretDB process listening for {mongodb_url}"
    return None


def restart_rabbitmq() -> float:
    """Stop the node, start it again; seconds it was down."""
    started = time.monotonic()
    subprocess.run(["rabbitmqctl", "-q", "stop"], check=True, timeout=120, capture_output=True)
    for _ in range(10):
        subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=60)
        if subprocess.run(["rabbitmqctl", "-q", "await_startup", "--timeout", "60"], capture_output=True).returncode == 0:
            return time.monotonic() - started
        time.sleep(2)
    raise RuntimeError("RabbitMQ did not come back")




@dataclass
class FerretDB:
    pid: int
    command: list[str]
    cwd: str
    url: str
    log: str | None = None  # where its output goes, kept across restarts

    @classmethod
    def find(cls, mongodb_url: str) -> "FerretDB | None":
        address = urlsplit(mongodb_url)
        listen = f"--listen-addr={address.hostname}:{address.port or 27017}"
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
                arguments = [part.decode() for part in command]
                if arguments and arguments[0].endswith("ferretdb") and listen in arguments:
                    output = os.readlink(entry / "fd" / "2")
                    log = output if Path(output).is_file() else None
                    return cls(int(entry.name), arguments, os.readlink(entry / "cwd"), mongodb_url, log)
            except (OSError, UnicodeDecodeError):
                continue
        return None

    def data_dir(self) -> Path | None:
        """Where its SQLite backend keeps one file per database (None for other backends)."""
        for argument in self.command:
            if argument.startswith("--sqlite-url=file:"):
                return Path(self.cwd) / unquote(urlsplit(argument.removeprefix("--sqlite-url=")).path)
        return None

    def index_ids(self, database_prefix: str) -> list[str]:
        """Give its databases named `database_prefix*` the `_id` index FerretDB's own lookups
        can use (services.ops.index_id_lookups); returns the tables newly indexed."""
        data = self.data_dir()
        return [] if data is None else index_id_lookups(data, database_prefix)

    def stop(self, patience: float = 30) -> tuple[float, bool]:
        """SIGTERM; SIGKILL if it is still there after `patience` seconds. Returns the seconds
        until it was gone and whether it had to be killed: a new one must not start on the same
        files while the old one still serves its connections."""
        started = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        killed = not self._exited_within(patience)
        if killed:
            os.kill(self.pid, signal.SIGKILL)
            assert self._exited_within(10), f"FerretDB {self.pid} survived SIGKILL"
        return time.monotonic() - started, killed

    def _exited_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._running() and time.monotonic() < deadline:
            time.sleep(0.1)
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

    def start(self) -> None:
        """The same command in the same folder; returns once it answers."""
        with open(self.log or os.devnull, "ab") as log:
            process = subprocess.Popen(self.command, cwd=self.cwd, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        self.pid = process.pid
        deadline = time.monotonic() + 60
        while True:
            try:
                with MongoClient(self.url, serverSelectionTimeoutMS=1000) as client:
                    client.admin.command("ping")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
