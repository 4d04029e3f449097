"""A three-node RabbitMQ cluster on loopback ports, built from the local rabbitmq-server
installation, for the fault run that stops a node. Each node has its own name, ports, folder
and no plugins, so the machine's own node (5672) is left alone. New quorum queues get their
leaders spread over the nodes (`queue_leader_locator = balanced`), so stopping any node moves
some leaders."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

DEFINITIONS = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq" / "definitions.development.json"
FIRST_PORT = 5681  # node n listens on FIRST_PORT + n - 1, its Erlang distribution on 20000 above


def scripts_folder() -> Path | None:
    """Where rabbitmq-server and rabbitmqctl really live. The Debian wrappers in /usr/sbin run
    them as the rabbitmq user with its data folders; the cluster needs its own."""
    found = shutil.which("rabbitmq-server")
    return Path(found).resolve().parent if found else None


class RabbitCluster:
    def __init__(self, folder: Path, size: int = 3) -> None:
        scripts = scripts_folder()
        assert scripts is not None, self.unavailable()
        self.scripts, self.folder, self.size = scripts, folder, size
        self.nodes = [f"kring{n}@localhost" for n in range(1, size + 1)]

    @staticmethod
    def unavailable() -> str | None:
        if scripts_folder() is None:
            return "a local RabbitMQ cluster needs the rabbitmq-server scripts on PATH (not found)"
        return None

    def url(self, node: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{FIRST_PORT + node - 1}/"

    def start(self) -> None:
        """Three fresh nodes, the second and third joined to the first."""
        for node in range(1, self.size + 1):
            self._ctl(node, "stop", check=False)  # a node left behind by an interrupted run
        shutil.rmtree(self.folder, ignore_errors=True)
        for node in range(1, self.size + 1):
            self.start_node(node)
        for node in range(2, self.size + 1):
            for command in (["stop_app"], ["reset"], ["join_cluster", self.nodes[0]], ["start_app"]):
                self._ctl(node, *command)
        running = self.running_nodes()
        assert running == set(self.nodes), running
        # the parties' users and permissions, as on the machine's own node (scripts/infra.sh)
        self._ctl(1, "import_definitions", str(DEFINITIONS))

    def start_node(self, node: int) -> None:
        """Start (or restart) node `node`; a node that was in the cluster rejoins it."""
        folder = self.folder / f"node{node}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "enabled_plugins").write_text("[].\n")
        (folder / "rabbitmq.conf").write_text("queue_leader_locator = balanced\n")
        port = FIRST_PORT + node - 1
        environment = {
            **os.environ, "RABBITMQ_NODENAME": self.nodes[node - 1], "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(port), "RABBITMQ_DIST_PORT": str(port + 20000),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"), "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"), "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(folder / "pid"),
        }  # fmt: skip
        subprocess.run([self.scripts / "rabbitmq-server", "-detached"], env=environment, capture_output=True, check=True, timeout=60)
        deadline = time.monotonic() + 120
        # await_startup fails at once while the new node is not yet known to epmd.
        while self._ctl(node, "await_startup", "--timeout", "60", check=False).returncode:
            assert time.monotonic() < deadline, f"{self.nodes[node - 1]} did not start; see {folder / 'log'}"
            time.sleep(1)

    def stop_node(self, node: int) -> None:
        self._ctl(node, "stop")

    def running_nodes(self, asking: int = 1) -> set[str]:
        status = json.loads(self._ctl(asking, "cluster_status", "--formatter", "json").stdout)
        return set(status["running_nodes"])

    def leaders(self, asking: int = 1) -> dict[str, str]:
        """Queue name → the node leading it."""
        listing = self._ctl(asking, "-q", "list_queues", "name", "leader", "--no-table-headers").stdout
        return dict(line.split("\t")[:2] for line in listing.splitlines() if "\t" in line)

    def remove(self) -> None:
        for node in range(1, self.size + 1):
            self._ctl(node, "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _ctl(self, node: int, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.scripts / "rabbitmqctl", "-n", self.nodes[node - 1], *arguments], capture_output=True, text=True, timeout=180
        )
        if check and done.returncode:
            raise RuntimeError(f"rabbitmqctl -n {self.nodes[node - 1]} {' '.join(arguments)}: {done.stderr.strip()[-500:]}")
        return done
