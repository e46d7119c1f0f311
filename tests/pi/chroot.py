"""Run commands in the emulated Pi userland (tools/pi-rootfs.sh) without changing it.

Each ``Chroot`` is an overlay: the cached root filesystem is the read-only
lower layer and everything a test writes (the agent's venv, /etc/xueliang,
a fresh bundle on /boot/firmware) lands in an upper folder of its own. Every
command runs in a private mount namespace (``unshare --mount``) that mounts the
overlay, /proc, /sys and /dev and then chroots, so a crashed test leaves no
mount behind on the host and the next command sees the same upper layer.

The network namespace is the host's, so 127.0.0.1 inside is the host: a
Mosquitto started by the host-side test is reachable from the emulated agent.

The CPU is a Raspberry Pi 4's: qemu emulates a Cortex-A72 (``QEMU_CPU``), and
/proc/cpuinfo inside is a Pi 4's (``cpuinfo-pi4.txt``). qemu-user 7.2 shows the
host's x86 /proc/cpuinfo to the guest, and LiteRT's CPU detection on aarch64
then crashes: SIGSEGV in ``allocate_tensors`` (XNNPACK) or, without XNNPACK,
in ``invoke``. A real Pi's kernel reports its ARM cores, as this file does.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "tools" / "pi-rootfs.sh"
PIP_CACHE = Path(os.environ.get("XL_ROOTFS_CACHE", "/var/cache/xueliang")) / "pip-cache"
CPUINFO = Path(__file__).with_name("cpuinfo-pi4.txt")
QEMU_CPU = "cortex-a72"  # the Raspberry Pi 4's core


class ChrootError(RuntimeError):
    pass


def missing_tools() -> list[str]:
    """What this machine lacks to build and enter the emulated userland."""
    missing = [t for t in ("debootstrap", "unshare", "chroot") if shutil.which(t) is None]
    if not Path("/usr/bin/qemu-aarch64-static").exists():
        missing.append("qemu-user-static")
    if os.geteuid() != 0:
        missing.append("root")
    return missing


def build_rootfs(arch: str = "arm64", timeout: float = 3600) -> Path:
    """The cached root filesystem's path; builds it first if it is missing."""
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT), arch], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise ChrootError(f"tools/pi-rootfs.sh {arch} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass
class Run:
    args: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def check(self) -> Run:
        if self.returncode != 0:
            raise ChrootError(
                f"in the chroot: {self.args}\nexit {self.returncode} after {self.seconds:.0f} s\n"
                f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
            )
        return self


@dataclass
class Chroot:
    lower: Path
    work: Path  # holds upper/, work/ and merged/ (the mount point, empty on the host)
    binds: dict[str, Path] = field(default_factory=dict)  # path inside -> host path

    def __post_init__(self) -> None:
        self.binds.setdefault("/proc/cpuinfo", CPUINFO)
        for name in ("upper", "ovl", "merged"):
            (self.work / name).mkdir(parents=True, exist_ok=True)

    @property
    def upper(self) -> Path:
        """What the commands wrote, as seen from the host (reads only: the overlay owns it)."""
        return self.work / "upper"

    def put(self, inside: str, host_src: Path) -> None:
        """Copy a host file or folder to ``inside`` (absolute) in the upper layer."""
        dest = self.upper / inside.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if host_src.is_dir():
            shutil.copytree(host_src, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(host_src, dest)

    def read(self, inside: str) -> Path:
        """The host path of a file the chroot sees at ``inside``: upper layer first, then the rootfs."""
        rel = inside.lstrip("/")
        upper = self.upper / rel
        return upper if upper.exists() or upper.is_symlink() else self.lower / rel

    def _script(self, command: str) -> str:
        merged = self.work / "merged"
        q = shlex.quote
        lines = [
            "set -e",
            "mount --make-rprivate /",
            f"mount -t overlay overlay -o lowerdir={q(str(self.lower))},upperdir={q(str(self.upper))},"
            f"workdir={q(str(self.work / 'ovl'))} {q(str(merged))}",
            f"mount -t proc proc {q(str(merged / 'proc'))}",
            f"mount --rbind /sys {q(str(merged / 'sys'))}",
            f"mount --rbind /dev {q(str(merged / 'dev'))}",
            f"mount -t tmpfs tmpfs {q(str(merged / 'tmp'))}",
            f"mount -t tmpfs tmpfs {q(str(merged / 'run'))}",
            # pip inside reaches PyPI through the host's network: its resolver, and its CA bundle
            # (this machine's HTTPS goes through an intercepting proxy whose CA only the host trusts).
            f"cp /etc/resolv.conf {q(str(merged / 'etc/resolv.conf'))} 2>/dev/null || true",
            f"cp /etc/ssl/certs/ca-certificates.crt {q(str(merged / 'etc/ssl/certs/ca-certificates.crt'))}",
        ]
        for inside, host in self.binds.items():
            target = merged / inside.lstrip("/")
            if host.is_dir():
                lines.append(f"mkdir -p {q(str(target))}")
            else:
                lines.append(f"mkdir -p {q(str(target.parent))}; [ -e {q(str(target))} ] || : > {q(str(target))}")
            lines.append(f"mount --bind {q(str(host))} {q(str(target))}")
        lines.append(f"exec chroot {q(str(merged))} /bin/sh -c {q(command)}")
        return "\n".join(lines)

    def run(self, command: str, *, env: dict[str, str] | None = None, timeout: float = 900, nice: int = 10) -> Run:
        """Run a shell command inside as root; ``nice`` because the host's cores are shared."""
        base = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "QEMU_CPU": QEMU_CPU,
        }
        base.update(env or {})
        start = time.monotonic()
        try:
            done = subprocess.run(
                ["nice", "-n", str(nice), "unshare", "--mount", "sh", "-c", self._script(command)],
                env=base,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ChrootError(
                f"in the chroot: {command}\nno exit within {timeout:.0f} s\n"
                f"{(exc.stdout or b'')[-3000:]!r}\n{(exc.stderr or b'')[-3000:]!r}"
            ) from exc
        return Run(command, done.returncode, done.stdout, done.stderr, time.monotonic() - start)

    def popen(self, command: str, *, env: dict[str, str] | None = None, log: Path) -> subprocess.Popen[bytes]:
        """Start a long-running command inside (the agent); its output goes to ``log``."""
        base = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "QEMU_CPU": QEMU_CPU,
        }
        base.update(env or {})
        out = open(log, "ab")  # noqa: SIM115 - owned by the process
        return subprocess.Popen(
            ["nice", "-n", "10", "unshare", "--mount", "sh", "-c", self._script(command)],
            env=base,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def boot(self, log: Path) -> subprocess.Popen[bytes]:
        """Boot the overlay with systemd as PID 1: ``systemd-nspawn --boot``, host network.

        --keep-unit and --register=no: this host has no systemd or D-Bus to create a scope or
        register a machine with ("Failed to open system bus" without them). The tree is bound
        to a fresh folder under /var/lib for nspawn's lock (a killed run leaves the old one busy)."""
        q = shlex.quote
        merged = self.work / "merged"
        root = f"/var/lib/xl-nspawn/{self.work.name}-{os.getpid()}-{time.monotonic_ns()}"
        script = "\n".join(
            [
                "set -e",
                "mount --make-rprivate /",
                f"mount -t overlay overlay -o lowerdir={q(str(self.lower))},upperdir={q(str(self.upper))},"
                f"workdir={q(str(self.work / 'ovl'))} {q(str(merged))}",
                f"mkdir -p {q(root)}",
                f"mount --bind {q(str(merged))} {q(root)}",
                f"exec systemd-nspawn -q -D {q(root)} --boot --keep-unit --register=no",
            ]
        )
        out = open(log, "ab")  # noqa: SIM115 - owned by the process
        return subprocess.Popen(
            ["nice", "-n", "10", "unshare", "--mount", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @staticmethod
    def shut_down(nspawn: subprocess.Popen[bytes]) -> None:
        """Stop a booted container and everything in it. nspawn asks the container's
        systemd to power off, but under qemu that PID 1 outlived nspawn and was left
        running, reparented to init; killing a PID namespace's first process ends the
        whole namespace."""
        children = Path(f"/proc/{nspawn.pid}/task/{nspawn.pid}/children")
        first = children.read_text().split()[:1] if children.exists() else []
        nspawn.terminate()
        try:
            nspawn.wait(120)
        except subprocess.TimeoutExpired:
            nspawn.kill()
            nspawn.wait(10)
        for pid in first:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)

    @staticmethod
    def in_container(nspawn: subprocess.Popen[bytes], command: str, timeout: float = 120) -> Run:
        """Run a command in a booted container's namespaces (its PID 1 is nspawn's child)."""
        children = Path(f"/proc/{nspawn.pid}/task/{nspawn.pid}/children")
        pids = children.read_text().split() if children.exists() else []
        if not pids:
            return Run(command, -1, "", "container not up yet", 0.0)
        start = time.monotonic()
        done = subprocess.run(
            [
                "nsenter",
                "-t",
                pids[0],
                "-a",
                "--",
                "/usr/bin/env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "/bin/sh",
                "-c",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(command, done.returncode, done.stdout, done.stderr, time.monotonic() - start)
