"""A throw-away one-node SLURM cluster for the workflow tests (Debian slurm-wlm + munge, root).

`SlurmCluster(folder).start()` installs the packages when missing, writes slurm.conf and
gres.conf into `folder`, starts munged (unless one answers already), slurmctld
and slurmd, and waits until the node is idle; `stop()` stops the daemons it started, by pid.
Clients find the cluster through the SLURM_CONF variable of `env()`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("slurmctld", "slurmd", "munged")


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here (None when it can)."""
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd needs root"
    if all(_find(name) for name in DAEMONS):
        return None
    if shutil.which("apt-get") is None:
        return "slurm-wlm/munge are not installed and apt-get is not available"
    return None


def _find(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name,) if p.exists()), None)


def _run(cmd: list[str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def install_packages() -> None:
    """apt-get install slurm-wlm and munge when a daemon is missing (apt-get update if needed)."""
    if all(_find(name) for name in DAEMONS):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if _run(cmd, env=env).returncode != 0:
        _run(["apt-get", "update", "-q"], env=env)
        proc = _run(cmd, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"apt-get install {' '.join(PACKAGES)} failed: {proc.stderr[-500:]}")


class SlurmCluster:
    """One node (this machine) with partitions `cpu` (default) and `gpu` (MaxTime 24 h).

    The node declares the size of a typical GPU node (32 CPUs, 256 GB, 4 fake GPUs) whatever
    this machine has (`SlurmdParameters=config_overrides`), so that jobs ask for the real
    resources of conf/base.config; requests over a partition's limit are refused by sbatch
    (`EnforcePartLimits=ALL`), as on most sites.
    """

    CPUS, MEMORY_MB, GPUS = 32, 256_000, 4
    GPU_MAX_TIME = "1-00:00:00"

    def __init__(self, folder: Path, ctld_port: int = 6817, slurmd_port: int = 6818):
        self.folder = Path(folder)
        self.conf = self.folder / "slurm.conf"
        self.ports = (ctld_port, slurmd_port)
        self.pids: dict[str, int] = {}
        self.host = socket.gethostname().split(".")[0]

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment whose SLURM clients (sbatch, squeue, scontrol) talk to this cluster."""
        return dict(base if base is not None else os.environ, SLURM_CONF=str(self.conf))

    def start(self, timeout: float = 90) -> SlurmCluster:
        """Install, configure and start the daemons; wait for the node to be idle."""
        install_packages()
        self.folder.mkdir(parents=True, exist_ok=True)
        for sub in ("state", "spool", "log"):
            (self.folder / sub).mkdir(exist_ok=True)
        self._write_config()
        self._start_munge()
        self._start("slurmctld", [_find("slurmctld"), "-f", str(self.conf)], "slurmctld.pid")
        self._start("slurmd", [_find("slurmd"), "-f", str(self.conf)], "slurmd.pid")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = _run(["sinfo", "-h", "-o", "%T"], timeout=30, env=self.env())
            if proc.returncode == 0 and proc.stdout.split() and all(
                    s.rstrip("*") == "idle" for s in proc.stdout.split()):
                return self
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"SLURM node not idle after {timeout:.0f} s: {self.logs()}")

    def stop(self) -> None:
        """Stop the daemons this object started (SIGTERM, then SIGKILL), by pid."""
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            _signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                _signal(pid, signal.SIGKILL)

    def logs(self) -> str:
        """Tail of the daemon logs (for failure messages)."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.folder / "log" / name
            if path.exists():
                parts.append(f"--- {name}\n" + "\n".join(path.read_text().splitlines()[-15:]))
        return "\n".join(parts)

    def scontrol(self, *args: str) -> None:
        """Run `scontrol ARGS` against this cluster (e.g. update a partition's state)."""
        proc = _run(["scontrol", *args], timeout=30, env=self.env())
        if proc.returncode != 0:
            raise RuntimeError(f"scontrol {' '.join(args)}: {proc.stderr.strip()}")

    def show_job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as key=value pairs (jobs stay visible for MinJobAge seconds)."""
        proc = _run(["scontrol", "-o", "show", "job", job_id], timeout=30, env=self.env())
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip())
        return dict(item.split("=", 1) for item in proc.stdout.split() if "=" in item)

    def _write_config(self) -> None:
        d = self.folder
        self.conf.write_text("\n".join([
            "ClusterName=pysimtest",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={self.ports[0]}",
            f"SlurmdPort={self.ports[1]}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "GresTypes=gpu",
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=task=1",
            "JobAcctGatherParams=OverMemoryKill",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "SlurmdParameters=config_overrides",
            "EnforcePartLimits=ALL",
            "DefMemPerCPU=1024",
            "MinJobAge=600",
            "KillWait=5",
            "InactiveLimit=0",
            f"StateSaveLocation={d / 'state'}",
            f"SlurmdSpoolDir={d / 'spool'}",
            f"SlurmctldPidFile={d / 'slurmctld.pid'}",
            f"SlurmdPidFile={d / 'slurmd.pid'}",
            f"SlurmctldLogFile={d / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={d / 'log' / 'slurmd.log'}",
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.CPUS} "
            f"RealMemory={self.MEMORY_MB} Gres=gpu:{self.GPUS} State=UNKNOWN",
            "PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            f"PartitionName=gpu Nodes=ALL Default=NO MaxTime={self.GPU_MAX_TIME} State=UP",
            "",
        ]))
        (d / "gres.conf").write_text("Name=gpu File=/dev/null,/dev/zero,/dev/full,/dev/urandom\n")

    def _start_munge(self) -> None:
        if _run(["bash", "-c", "munge -n | unmunge"], timeout=30).returncode == 0:
            return  # a munged already answers: use it, leave it alone
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            key.parent.mkdir(parents=True, exist_ok=True)
            key.write_bytes(os.urandom(1024))
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
        run_dir = Path("/run/munge")
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(run_dir, "munge", "munge")
        pid_file = run_dir / "munged.pid"
        pid_file.unlink(missing_ok=True)
        proc = _run(["runuser", "-u", "munge", "--", _find("munged")], timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"munged failed to start: {proc.stderr.strip()}")
        self.pids["munged"] = _wait_pid_file(pid_file)

    def _start(self, name: str, cmd: list[str], pid_name: str) -> None:
        pid_file = self.folder / pid_name
        pid_file.unlink(missing_ok=True)
        proc = _run(cmd, timeout=60, env=self.env())
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed to start: {proc.stderr.strip()} {self.logs()}")
        self.pids[name] = _wait_pid_file(pid_file)


def _wait_pid_file(path: Path, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip().isdigit():
            return int(path.read_text().strip())
        time.sleep(0.2)
    raise RuntimeError(f"no pid file {path} after {timeout:.0f} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
