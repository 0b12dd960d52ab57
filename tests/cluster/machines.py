"""Machines on this one: each a Linux network, PID and mount namespace running its own SSH
server, for rehearsing `ray up` with Ray's local provider as on machines you own.

A machine here is what the launcher needs a machine to be:
- its own address on a private bridge (198.18.<net>.<n>, a range kept for network tests), which
  Ray sees as the node's IP, with an SSH server listening on it;
- its own processes: `ray stop` on one machine stops that machine's Ray processes only, never
  those of another machine or of the tests running beside it;
- its own disk where a real machine has one: its home (`/home/emoref`, the user's HOME, so
  `~/emoref`, `~/.cache/emoref` and Ray's bootstrap files are per machine) and `/tmp/ray` are
  private, optionally more folders (`private=`: tmpfs over them, as a node's local disk);
- the shared filesystem every node mounts at `/shared` (a folder of the caller's, bound there).
Everything else (the project's checkout, its `.venv`, system files) is the host's, as a
machine image would be.

Needs root, iproute2, util-linux's unshare and Debian's openssh-server; `machines_missing()`
says what is not there. The test fixtures (tests/cluster/test_rehearsal.py) use it, and so can a
person who wants to follow README's cluster section on one machine:

    sudo .venv/bin/python -m tests.cluster.machines up runs/rehearsal   # prints the cluster file
    sudo .venv/bin/python -m tests.cluster.machines down runs/rehearsal
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
HOME = "/home/emoref"   # every machine's HOME: a private folder on each
SHARED = "/shared"      # the filesystem every machine mounts
SSHD = "/usr/sbin/sshd"


def machines_missing() -> str | None:
    """Why machines cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (network, PID and mount namespaces)"
    for tool in ("ip", "unshare", "ssh", "ssh-keygen", "rsync"):
        if not shutil.which(tool):
            return f"needs {tool} (Debian: iproute2, util-linux, openssh-client, rsync)"
    if not Path(SSHD).exists():
        return f"needs {SSHD} (Debian: openssh-server)"
    return None


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True)


@dataclass
class Machine:
    name: str
    address: str
    folder: Path              # on the host: home/, sshd.log
    process: subprocess.Popen | None = None  # its first process, when this process started it
    pid: int | None = None    # that process (its PID namespace dies with it)

    @property
    def home(self) -> Path:
        return self.folder / "home"


@dataclass
class Machines:
    """A bridge and the machines on it; `stop()` removes all of it."""
    folder: Path
    shared: Path
    net: int
    key: Path
    machines: dict[str, Machine] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"emoref{self.net}"

    @classmethod
    def create(cls, folder: Path, shared: Path | None = None) -> "Machines":
        folder.mkdir(parents=True, exist_ok=True)
        used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        net = random.choice([n for n in range(1, 250) if f"198.18.{n}." not in used])
        shared = shared or folder / "shared"
        shared.mkdir(parents=True, exist_ok=True)
        key = folder / "id_ed25519"
        if not key.exists():
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host_key"))
        (folder / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
        self = cls(folder=folder, shared=shared, net=net, key=key)
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"198.18.{net}.1/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        for path in (HOME, SHARED, "/run/sshd", "/tmp/ray"):  # mount points on the host
            Path(path).mkdir(parents=True, exist_ok=True)
        self.save()
        return self

    def save(self) -> None:
        (self.folder / "machines.json").write_text(json.dumps({
            "shared": str(self.shared), "net": self.net, "key": str(self.key),
            "machines": {name: {"address": m.address, "pid": m.pid}
                         for name, m in self.machines.items()}}, indent=1))

    @classmethod
    def load(cls, folder: Path) -> "Machines":
        """The machines `up` left running (machines.json), to stop them from another process."""
        state = json.loads((folder / "machines.json").read_text())
        self = cls(folder=folder, shared=Path(state["shared"]), net=state["net"],
                   key=Path(state["key"]))
        self.machines = {name: Machine(name.split(" ")[0], m["address"],
                                       folder / name.split(" ")[0], pid=m["pid"])
                         for name, m in state["machines"].items()}
        return self

    def start(self, name: str, private: tuple[str, ...] = ()) -> Machine:
        """Boots machine `name` at the next free address; `private`: folders that get a tmpfs of
        their own on this machine (its local disk), hiding what the host has there."""
        n = 2 + len(self.machines)
        machine = Machine(name, f"198.18.{self.net}.{n}", self.folder / name)
        machine.home.mkdir(parents=True, exist_ok=True)
        namespace = f"emoref{self.net}-{n}"
        veth = f"emoref{self.net}v{n}"
        run("ip", "netns", "add", namespace)
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        run("ip", "link", "set", veth, "master", self.bridge, "up")
        run("ip", "-n", namespace, "addr", "add", f"{machine.address}/24", "dev", "eth0")
        run("ip", "-n", namespace, "link", "set", "eth0", "up")
        run("ip", "-n", namespace, "link", "set", "lo", "up")
        # A default route so that Ray finds the node's address as on a real machine (it asks
        # the kernel which source address would reach a public one; nothing is sent).
        run("ip", "-n", namespace, "route", "add", "default", "via", f"198.18.{self.net}.1")
        config = machine.folder / "sshd_config"
        config.write_text("\n".join([
            f"ListenAddress {machine.address}", f"HostKey {self.folder / 'host_key'}",
            f"AuthorizedKeysFile {self.folder / 'authorized_keys'}", "PermitRootLogin yes",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            "StrictModes no", "PidFile none",
            "MaxStartups 100", "MaxSessions 100", "Subsystem sftp internal-sftp", ""]))
        # This machine's root user has its home at HOME (its own /etc/passwd): ssh, sshd and Ray
        # then all agree on `~`, which ssh reads from the passwd file, not from $HOME.
        passwd = machine.folder / "passwd"
        passwd.write_text("".join(
            ":".join(f[:5] + [HOME] + f[6:]) if f[0] == "root" else line
            for line in Path("/etc/passwd").read_text().splitlines(keepends=True)
            for f in [line.split(":")]))
        (machine.home / ".bashrc").touch()
        mounts = [f"mount --bind {shlex.quote(str(passwd))} /etc/passwd",
                  f"mount --bind {shlex.quote(str(machine.home))} {HOME}",
                  f"mount --bind {shlex.quote(str(self.shared))} {SHARED}",
                  "mount -t tmpfs emoref-node-tmp /tmp/ray"]
        for path in private:
            Path(path).mkdir(parents=True, exist_ok=True)
            mounts.append(f"mount -t tmpfs emoref-node-local {shlex.quote(path)}")
        script = " && ".join(mounts + [f"exec {SSHD} -D -e -f {shlex.quote(str(config))}"])
        log = (machine.folder / "sshd.log").open("a")
        machine.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, "unshare", "--pid", "--fork", "--mount-proc",
             "--propagation", "private", "sh", "-c", script],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        machine.pid = machine.process.pid
        self.machines[name] = machine
        self.save()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if machine.process.poll() is not None:
                raise RuntimeError(f"machine {name} did not boot:\n" +
                                   (machine.folder / "sshd.log").read_text()[-2000:])
            try:
                socket.create_connection((machine.address, 22), timeout=1).close()
                return machine
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"machine {name}: no SSH server on {machine.address}:22 in 30 s")

    def lose(self, name: str) -> None:
        """The machine dies at once with every process on it (its PID namespace's first process
        is killed); its disk (home) stays on the host, as a dead machine's disk would."""
        machine = self.machines.pop(name)
        n = machine.address.rsplit(".", 1)[1]
        if machine.pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(machine.pid, signal.SIGKILL)
            if machine.process:
                machine.process.wait(timeout=30)
        subprocess.run(["ip", "link", "del", f"emoref{self.net}v{n}"], capture_output=True)
        subprocess.run(["ip", "netns", "del", f"emoref{self.net}-{n}"], capture_output=True)
        self.machines[f"{name} (lost)"] = Machine(name, machine.address, machine.folder)
        self.save()

    def stop(self) -> None:
        for name in list(self.machines):
            if not name.endswith("(lost)"):
                self.lose(name)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


def reuse_environment(machine: Machine) -> None:
    """The project's built environment as the machine's own: `~/emoref/.venv` is the host
    checkout's `.venv` (a machine image with the project installed), so the shipped setup
    command `make install` finds it up to date instead of downloading 6 GB per machine."""
    checkout = machine.home / "emoref"
    checkout.mkdir(parents=True, exist_ok=True)
    link = checkout / ".venv"
    if not link.exists():
        link.symlink_to(REPO / ".venv")


def cluster_file(machines: Machines, head: str, workers: list[str], name: str,
                 source: Path = REPO / "cluster.onprem.yaml") -> Path:
    """The shipped on-premises cluster file with this rehearsal's addresses, user and key filled
    in (the places it marks SET) and every command as shipped."""
    config = yaml.safe_load(source.read_text())
    config["cluster_name"] = name
    config["provider"]["head_ip"] = machines.machines[head].address
    config["provider"]["worker_ips"] = [machines.machines[w].address for w in workers]
    config["auth"] = {"ssh_user": "root", "ssh_private_key": str(machines.key)}
    config.pop("docker", None)
    path = machines.folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.machines",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    folder = args.folder.resolve()
    if args.action == "down":
        Machines.load(folder).stop()
        print(f"machines of {folder} stopped")
        return
    missing = machines_missing()
    if missing:
        sys.exit(f"python -m tests.cluster.machines: {missing}")
    machines = Machines.create(folder)
    names = ["head"] + [f"worker{i}" for i in range(1, args.workers + 1)]
    for name in names:
        reuse_environment(machines.start(name))
    path = cluster_file(machines, "head", names[1:], "emoref-rehearsal")
    print(f"machines: {', '.join(f'{m.name} {m.address}' for m in machines.machines.values())}; "
          f"shared filesystem {machines.shared} (at {SHARED} on each)\ncluster file: {path}")


if __name__ == "__main__":
    main()
