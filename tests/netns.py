"""A throwaway multi-host network built from Linux network namespaces (root + iproute2 only).

    with Network() as net:                       # namespace <prefix>-br holds bridge br0
        coordinator = net.add_host("coordinator")  # namespace <prefix>-coordinator, eth0 10.231.0.1
        hospital = net.add_host("hospital-1")      # namespace <prefix>-hospital-1, eth0 10.231.0.2
        server = coordinator.popen([sys.executable, "-m", "http.server", "-b", coordinator.address, "8000"])
        assert wait_port(hospital, 8000, "coordinator", timeout=10)
        hospital.run([sys.executable, "-c", "import urllib.request as u; u.urlopen('http://coordinator:8000/')"],
                     timeout=10, check=True)

Invariants:
- Every interface and address lives inside this Network's namespaces; the root namespace never
  gains one (veth pairs are created inside the bridge namespace, with the peer born in the host's).
- Every host name resolves to its address in every host namespace (`/etc/netns/<ns>/hosts`,
  which `ip netns exec` bind-mounts over /etc/hosts); nothing else about the filesystem differs.
- On exit (normal, exception, KeyboardInterrupt, or the atexit backstop) every process in every
  namespace is SIGKILLed and gone, every namespace and /etc/netns/<ns> dir is deleted, and that
  is verified; a failure to clean up raises NetnsError.
- A live Network holds an flock on /run/lock/fedviz-netns-<prefix>.lock; `cleanup_stale` only
  removes prefixes whose lock nobody holds (i.e. whose owner died without cleaning up).

What a caller must know: a process under `ip netns exec` shares everything with the root namespace
(filesystem, users, PIDs, hostname, environment, cwd) except the network and /etc/hosts (and /sys).
No host can reach anything outside the Network (no default route, no DNS), and this process, in
the root namespace, cannot reach the hosts: talk to them from inside (`Host.run`, `wait_port`).
Each host has its own loopback and port space. SIGKILL or SIGTERM of this process skips `__exit__`
and atexit: call `Network.cleanup_stale()` at the start of a session to remove what such a run left.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import ipaddress
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

NETNS_RUN_DIR = Path("/var/run/netns")
"""Where iproute2 mounts named namespaces (compiled into `ip`)."""
NETNS_ETC_DIR = Path("/etc/netns")
"""`ip netns exec NS` bind-mounts each file of /etc/netns/NS/ over the same name in /etc."""
LOCK_DIR = Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")
BRIDGE = "br0"
PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "grpc_proxy", "ftp_proxy", "no_proxy"})
"""Environment variables (any case) that `Host.popen` drops when it passes on this process's env."""
IFNAMSIZ = 15
"""Longest Linux interface name."""

_BASE_PREFIX = re.compile(r"[a-z][a-z0-9]{0,10}")
_HOST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

_PROBE = """
import socket, sys, time
address, port, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:
    try:
        socket.create_connection((address, port), timeout=max(0.05, min(0.5, deadline - time.monotonic()))).close()
        sys.exit(0)
    except OSError:
        if time.monotonic() >= deadline:
            sys.exit(1)
        time.sleep(0.05)
"""


class NetnsError(RuntimeError):
    """Creating, using or cleaning up namespaces failed (the message says what is left, if anything)."""


# --- iproute2 -------------------------------------------------------------------------------------

_ip_lock = threading.Lock()
_ip_path: str | None = None


def _find_ip() -> str | None:
    """Path of the `ip` binary, or None."""
    found = shutil.which("ip")
    if found:
        return found
    for candidate in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _install_iproute2() -> None:
    """`apt-get install -y iproute2` non-interactively (after `apt-get update` if the first try fails)."""
    if os.geteuid() != 0:
        raise NetnsError("`ip` (iproute2) is missing and installing it needs root")
    if shutil.which("apt-get") is None:
        raise NetnsError("`ip` (iproute2) is missing and there is no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def apt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["apt-get", *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900
        )

    if apt("install", "-y", "-qq", "iproute2").returncode == 0:
        return
    apt("update", "-qq")
    done = apt("install", "-y", "-qq", "iproute2")
    if done.returncode != 0:
        raise NetnsError(f"apt-get install iproute2 failed: {done.stderr.strip()[-2000:]}")


def ensure_ip() -> str:
    """Path of `ip`; installs iproute2 with apt-get first when it is missing (root only)."""
    global _ip_path
    with _ip_lock:
        if _ip_path is None:
            found = _find_ip()
            if found is None:
                _install_iproute2()
                found = _find_ip()
                if found is None:
                    raise NetnsError("installed iproute2 but still no `ip` on PATH or in /usr/sbin, /sbin")
            _ip_path = found
        return _ip_path


def _ip(*args: str, check: bool = True, timeout: float = 30.0) -> str:
    """Run `ip ARGS` and return its stdout; raises NetnsError (with ip's stderr) when `check` and it fails."""
    done = subprocess.run(
        [ensure_ip(), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def _netns_names() -> list[str]:
    """Names in `ip netns list` (first word of each line)."""
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _root_interfaces() -> list[str]:
    """Interface names in the root (this process's) namespace, `ip -o link`, without any `@peer`."""
    names = []
    for line in _ip("-o", "link").splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


# --- processes in a namespace -----------------------------------------------------------------------

NsId = tuple[int, int]
"""(st_dev, st_ino) of a network namespace: stable for its whole life, even after `ip netns del`."""


def _ns_id(namespace: str) -> NsId:
    st = os.stat(NETNS_RUN_DIR / namespace)
    return (st.st_dev, st.st_ino)


def _pids_in(ns_id: NsId) -> list[int]:
    """Live (non-zombie) processes whose network namespace is `ns_id`: what `ip netns pids` lists,
    keyed by inode so it still works once the name is deleted. Zombies have no ns link: not listed."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == ns_id:
            pids.append(int(entry.name))
    return pids


def _kill_in(pid: int, ns_id: NsId) -> tuple[bool, int | None]:
    """SIGKILL `pid` only if it is (still) in `ns_id`. Returns (killed, pidfd of the killed process,
    which the caller closes). A pidfd pins the process, so a reused pid is never hit; without pidfd
    support (Linux < 5.3) it falls back to a plain kill after the check."""
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except ProcessLookupError:
        return False, None
    except OSError:
        pidfd = None
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
        if (st.st_dev, st.st_ino) != ns_id:
            raise ProcessLookupError(pid)
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
        return True, pidfd
    except (ProcessLookupError, FileNotFoundError):
        if pidfd is not None:
            os.close(pidfd)
        return False, None


def _exited(pid: int, pidfd: int | None) -> bool:
    """True once the process has exited (a zombie, or reaped): a pidfd turns readable then."""
    if pidfd is not None:
        return bool(select.select([pidfd], [], [], 0)[0])
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _kill_namespace(ns_id: NsId, label: str, timeout: float) -> list[int]:
    """SIGKILL every process in `ns_id` until none is left (repeats to catch processes forked meanwhile),
    then wait until each one killed has exited: a dying process leaves the namespace a moment before
    it is dead. Returns the pids killed; raises NetnsError if some survive `timeout` seconds."""
    killed: dict[int, int | None] = {}
    deadline = time.monotonic() + timeout
    try:
        while pids := [pid for pid in _pids_in(ns_id) if pid not in killed]:
            if time.monotonic() > deadline:
                raise NetnsError(f"processes {pids} still in namespace {label} {timeout}s after SIGKILL")
            for pid in pids:
                done, pidfd = _kill_in(pid, ns_id)
                if done:
                    killed[pid] = pidfd
            time.sleep(0.002)
        while alive := [pid for pid, pidfd in killed.items() if not _exited(pid, pidfd)]:
            if time.monotonic() > deadline:
                raise NetnsError(f"processes {alive} of namespace {label} not dead {timeout}s after SIGKILL")
            time.sleep(0.002)
    finally:
        for pidfd in killed.values():
            if pidfd is not None:
                os.close(pidfd)
    return list(killed)


# --- locks: who owns a prefix -----------------------------------------------------------------------


def _lock_path(prefix: str) -> Path:
    return LOCK_DIR / f"fedviz-netns-{prefix}.lock"


def _try_lock(prefix: str) -> int | None:
    """fd holding an exclusive flock on the prefix's lock file, or None if a live process holds it.
    Classic protocol: after locking, check the path still names the locked inode (not unlinked meanwhile)."""
    path = _lock_path(prefix)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _unlock(prefix: str, fd: int) -> None:
    """Unlink the lock file, then release it (in that order, so a waiter re-checks and retries)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_lock_path(prefix))
    os.close(fd)


def _purge(prefix: str, timeout: float = 10.0) -> list[str]:
    """Remove every namespace `<prefix>-*` (killing its processes first) and /etc/netns/<prefix>-* dir.
    Caller holds the prefix's lock. Returns the namespaces removed; raises NetnsError if any remain."""
    mine = [name for name in _netns_names() if name.startswith(f"{prefix}-")]
    errors = []
    for name in mine:
        try:
            _kill_namespace(_ns_id(name), name, timeout)
        except (NetnsError, OSError) as error:
            errors.append(str(error))
        _ip("netns", "del", name, check=False)
    if NETNS_ETC_DIR.is_dir():
        for path in NETNS_ETC_DIR.glob(f"{prefix}-*"):
            shutil.rmtree(path, ignore_errors=True)
    _remove_etc_netns_if_empty()
    left = [name for name in _netns_names() if name.startswith(f"{prefix}-")]
    if left or errors:
        raise NetnsError(f"could not remove namespaces {left}: {'; '.join(errors)}")
    return mine


def _remove_etc_netns_if_empty() -> None:
    with contextlib.suppress(OSError):  # not empty (another Network's), or already gone
        NETNS_ETC_DIR.rmdir()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C until the block ends (main thread only), so a second Ctrl-C cannot cut cleanup short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):
        yield
        return
    received: list[FrameType | None] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, received[0])
            else:
                raise KeyboardInterrupt


# --- the network --------------------------------------------------------------------------------


class Host:
    """One party: its own network namespace `namespace`, with `lo` and `eth0` (holding `address`) up.

    Every process started through it runs inside that namespace, in its own session (process group),
    and is SIGKILLed when the Network exits (or by `kill_all`)."""

    def __init__(self, network: Network, name: str, namespace: str, address: str, ns_id: NsId) -> None:
        self.network = network
        self.name = name
        self.namespace = namespace
        self.address = address
        self._ns_id = ns_id
        self._processes: list[subprocess.Popen[Any]] = []

    def __repr__(self) -> str:
        return f"Host({self.name!r}, namespace={self.namespace!r}, address={self.address!r})"

    def command(self, args: Sequence[str | os.PathLike[str]]) -> list[str]:
        """The argv that runs `args` inside this host's namespace: `ip netns exec <ns> args...`."""
        if isinstance(args, str | bytes | os.PathLike):
            raise TypeError("args must be a sequence of arguments (no shell), e.g. ['python3', '-V']")
        return [ensure_ip(), "netns", "exec", self.namespace, *(os.fspath(arg) for arg in args)]

    def popen(self, args: Sequence[str | os.PathLike[str]], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start `args` inside the namespace; kwargs go to subprocess.Popen (env, cwd, stdout, text...).
        Returns once the process is inside the namespace. Defaults: its own session (killable as a group: os.killpg(p.pid, ...)), stdin from /dev/null,
        and (without `env`) this process's environment less *_proxy variables: no proxy is reachable
        from inside, so they would only send HTTP/gRPC between hosts to nowhere.
        `ip netns exec` execs the command, so the Popen's pid is the command's own pid."""
        self.network._require_open()
        if kwargs.get("env") is None:
            kwargs["env"] = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
        kwargs.setdefault("start_new_session", True)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process: subprocess.Popen[Any] = subprocess.Popen(self.command(args), **kwargs)
        self._processes.append(process)
        self._wait_inside(process)
        return process

    def _wait_inside(self, process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
        """Return once `process` has entered the namespace (or exited): `ip netns exec` joins it a
        moment after it starts, and a process still outside would escape a namespace-wide kill."""
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            try:
                st = os.stat(f"/proc/{process.pid}/ns/net")
            except OSError:  # exiting
                return
            if (st.st_dev, st.st_ino) == self._ns_id:
                return
            time.sleep(0.0005)

    def run(
        self,
        args: Sequence[str | os.PathLike[str]],
        timeout: float,
        *,
        input: str | bytes | None = None,
        capture_output: bool = False,
        check: bool = False,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[Any]:
        """Like subprocess.run inside the namespace; on timeout the command's whole process group is
        SIGKILLed and reaped before TimeoutExpired is raised."""
        if input is not None:
            kwargs["stdin"] = subprocess.PIPE
        if capture_output:
            kwargs.setdefault("stdout", subprocess.PIPE)
            kwargs.setdefault("stderr", subprocess.PIPE)
        process = self.popen(args, **kwargs)
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(process.pid) == process.pid:
                    os.killpg(process.pid, signal.SIGKILL)
            process.kill()
            process.communicate()
            raise
        done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        if check:
            done.check_returncode()
        return done

    def pids(self) -> list[int]:
        """Live processes in this namespace now (what `ip netns pids <namespace>` lists)."""
        return _pids_in(self._ns_id)

    def kill_all(self, timeout: float = 10.0) -> list[int]:
        """SIGKILL every process in this namespace (however started, daemonised or ignoring SIGTERM),
        wait until none is left, and reap the ones this Host started. Returns the pids killed."""
        killed = _kill_namespace(self._ns_id, self.namespace, timeout)
        for process in self._processes:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired as error:
                raise NetnsError(f"{self.name}: pid {process.pid} not reaped after SIGKILL") from error
        return killed


class Network:
    """Namespaces `<prefix>-br` (bridge br0) and `<prefix>-<host>` per host, joined by veth pairs.

    `prefix` is a base: by default 4 random hex digits are appended (`fvz` -> `fvz3a9c`) so parallel
    or leftover runs never clash; `unique=False` uses it as is. Nothing exists before `__enter__`;
    nothing is left after `__exit__` (verified)."""

    def __init__(self, prefix: str = "fvz", subnet: str = "10.231.0.0/24", *, unique: bool = True) -> None:
        if not _BASE_PREFIX.fullmatch(prefix):
            raise ValueError(f"prefix {prefix!r}: lowercase letters and digits, starting with a letter")
        self.base_prefix = prefix
        self.unique = unique
        self.prefix = prefix + secrets.token_hex(2) if unique else prefix
        if len(self.prefix) > IFNAMSIZ - 4:  # room for the bridge-side veth ends "<prefix>-<n>"
            raise ValueError(f"prefix {self.prefix!r} longer than {IFNAMSIZ - 4} (with the random part)")
        self.subnet = ipaddress.IPv4Network(subnet)
        if self.subnet.prefixlen > 30:
            raise ValueError(f"subnet {subnet} has no room for hosts")
        self.bridge_namespace = f"{self.prefix}-br"
        self._addresses = self.subnet.hosts()
        self._hosts: dict[str, Host] = {}
        self._bridge_ns_id: NsId | None = None
        self._lock_fd: int | None = None
        self._state = "new"  # -> "open" -> "closed"
        self._owner = os.getpid()  # only the process that entered it cleans it up at exit (not a fork)
        self._mutex = threading.RLock()

    def __repr__(self) -> str:
        return f"Network(prefix={self.prefix!r}, subnet='{self.subnet}', hosts={list(self._hosts)})"

    @property
    def hosts(self) -> dict[str, Host]:
        """The hosts added so far, by name (a copy)."""
        return dict(self._hosts)

    @property
    def namespaces(self) -> list[str]:
        """Every namespace this Network created (bridge first)."""
        created = [self.bridge_namespace] if self._bridge_ns_id is not None else []
        return created + [host.namespace for host in self._hosts.values()]

    def __getitem__(self, name: str) -> Host:
        return self._hosts[name]

    def _require_open(self) -> None:
        if self._state != "open":
            raise NetnsError(f"{self!r} is {self._state}: use it inside its `with` block")

    # -- life cycle

    def __enter__(self) -> Network:
        with self._mutex:
            if self._state != "new":
                raise NetnsError("a Network can be entered only once")
            ensure_ip()
            self._lock_fd = _try_lock(self.prefix)
            while self._lock_fd is None:
                if not self.unique:
                    raise NetnsError(f"prefix {self.prefix!r} is in use by a live Network")
                self.prefix = self.base_prefix + secrets.token_hex(2)
                self.bridge_namespace = f"{self.prefix}-br"
                self._lock_fd = _try_lock(self.prefix)
            self._state = "open"
            self._owner = os.getpid()
            _live.add(self)
            try:
                _purge(self.prefix)  # leftovers of a dead run with this very prefix
                _ip("netns", "add", self.bridge_namespace)
                self._bridge_ns_id = _ns_id(self.bridge_namespace)
                _ip("-n", self.bridge_namespace, "link", "set", "lo", "up")
                _ip("-n", self.bridge_namespace, "link", "add", BRIDGE, "type", "bridge")
                _ip("-n", self.bridge_namespace, "link", "set", BRIDGE, "up")
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def add_host(self, name: str) -> Host:
        """A new namespace `<prefix>-<name>` whose eth0 gets the subnet's next address; every host's
        hosts file is rewritten so all names resolve everywhere (in place: running processes see it)."""
        with self._mutex:
            self._require_open()
            if not _HOST_NAME.fullmatch(name) or name == "br":
                raise ValueError(f"host name {name!r}: a DNS label (a-z, 0-9, '-'), not 'br'")
            if name in self._hosts:
                raise ValueError(f"host {name!r} already exists")
            index = len(self._hosts) + 1
            outer = f"{self.prefix}-{index}"  # bridge-side veth end, inside the bridge namespace
            if len(outer) > IFNAMSIZ:
                raise NetnsError(f"interface name {outer!r} longer than {IFNAMSIZ}: use a shorter prefix")
            try:
                address = str(next(self._addresses))
            except StopIteration:
                raise NetnsError(f"subnet {self.subnet} is full") from None
            namespace = f"{self.prefix}-{name}"
            try:
                _ip("netns", "add", namespace)
                host = Host(self, name, namespace, address, _ns_id(namespace))
                self._hosts[name] = host
                # Both ends are born outside the root namespace: never visible there, not even briefly.
                _ip("-n", self.bridge_namespace, "link", "add", outer, "type", "veth", "peer", "name", "eth0",
                    "netns", namespace)  # fmt: skip
                _ip("-n", self.bridge_namespace, "link", "set", outer, "master", BRIDGE, "up")
                _ip("-n", namespace, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
                _ip("-n", namespace, "link", "set", "eth0", "up")
                _ip("-n", namespace, "link", "set", "lo", "up")
                self._write_hosts_files()
            except BaseException:
                self.close()  # a half-built network is of no use: tear it all down
                raise
            return host

    def hosts_file(self) -> str:
        """The /etc/hosts every host namespace sees: localhost, then each host in the order added."""
        lines = ["127.0.0.1\tlocalhost"] + [f"{host.address}\t{host.name}" for host in self._hosts.values()]
        return "\n".join(lines) + "\n"

    def _write_hosts_files(self) -> None:
        """Rewrite /etc/netns/<ns>/hosts of every host in place (same inode, so the bind mount of a
        running process sees the new names; the text only grows, so a reader never sees less)."""
        text = self.hosts_file().encode()
        for host in self._hosts.values():
            directory = NETNS_ETC_DIR / host.namespace
            for attempt in range(10):  # another Network may rmdir an empty /etc/netns between the steps
                try:
                    directory.mkdir(parents=True, exist_ok=True)
                    fd = os.open(directory / "hosts", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
                    break
                except FileNotFoundError:
                    if attempt == 9:
                        raise
            try:
                os.write(fd, text)
                os.ftruncate(fd, len(text))
            finally:
                os.close(fd)

    def close(self) -> None:
        """Kill every process in every namespace, delete the namespaces and /etc/netns dirs, verify
        none is left (names, processes, root interfaces with this prefix). Idempotent; raises
        NetnsError if anything is left. A no-op in a forked child: only the process that entered cleans up."""
        if os.getpid() != self._owner:  # a forked child unwinding: the network is its parent's
            return
        with self._mutex, _sigint_deferred():
            if self._state == "closed":
                return
            self._state = "closed"
            errors: list[str] = []

            def step(action: Callable[[], object]) -> None:
                """Run one cleanup step; a failure is noted and the next steps still run."""
                try:
                    action()
                except Exception as error:
                    errors.append(f"{type(error).__name__}: {error}")

            ids = {host.namespace: host._ns_id for host in self._hosts.values()}
            if self._bridge_ns_id is not None:
                ids[self.bridge_namespace] = self._bridge_ns_id
            try:
                for host in self._hosts.values():
                    step(host.kill_all)
                for namespace, ns_id in ids.items():
                    step(functools.partial(_kill_namespace, ns_id, namespace, 10.0))
                    step(functools.partial(_ip, "netns", "del", namespace, check=False))
                for namespace in ids:
                    shutil.rmtree(NETNS_ETC_DIR / namespace, ignore_errors=True)
                step(lambda: _purge(self.prefix))  # anything else with our prefix (e.g. half-made)
                _remove_etc_netns_if_empty()
                step(lambda: self._verify_gone(ids))
            finally:
                if self._lock_fd is not None:
                    _unlock(self.prefix, self._lock_fd)
                    self._lock_fd = None
                _live.discard(self)
            if errors:
                raise NetnsError(f"cleanup of {self.prefix} incomplete: " + "; ".join(errors))

    def _verify_gone(self, ids: dict[str, NsId]) -> None:
        """Raise NetnsError unless no namespace name, /etc/netns dir, process (even in a deleted
        namespace) or root-namespace interface of this Network is left."""
        left = []
        if names := [name for name in _netns_names() if name.startswith(f"{self.prefix}-")]:
            left.append(f"namespaces {names}")
        if dirs := [str(NETNS_ETC_DIR / ns) for ns in ids if (NETNS_ETC_DIR / ns).exists()]:
            left.append(f"directories {dirs}")
        for namespace, ns_id in ids.items():
            if pids := _pids_in(ns_id):
                left.append(f"processes {pids} in {namespace}")
        if interfaces := [name for name in _root_interfaces() if name.startswith(self.prefix)]:
            left.append(f"root-namespace interfaces {interfaces}")
        if left:
            raise NetnsError("left behind: " + ", ".join(left))

    @staticmethod
    def cleanup_stale(prefix_pattern: str = "fvz") -> list[str]:
        """Remove what killed runs left behind: namespaces, /etc/netns dirs and lock files of every
        prefix `<prefix_pattern>` or `<prefix_pattern><4 hex>` whose lock no live process holds.
        Safe while other Networks run (their locks are held). Returns the namespaces removed."""
        if not _BASE_PREFIX.fullmatch(prefix_pattern):
            raise ValueError(
                f"prefix {prefix_pattern!r}: lowercase letters and digits, starting with a letter"
            )
        pattern = re.compile(rf"{re.escape(prefix_pattern)}(?:[0-9a-f]{{4}})?")
        candidates = {name.split("-", 1)[0] for name in _netns_names() if "-" in name}
        if NETNS_ETC_DIR.is_dir():
            candidates |= {path.name.split("-", 1)[0] for path in NETNS_ETC_DIR.iterdir() if "-" in path.name}
        candidates |= {
            path.name[len("fedviz-netns-") : -len(".lock")] for path in LOCK_DIR.glob("fedviz-netns-*.lock")
        }
        removed: list[str] = []
        for prefix in sorted(p for p in candidates if pattern.fullmatch(p)):
            fd = _try_lock(prefix)
            if fd is None:
                continue  # a live Network owns it
            try:
                removed += _purge(prefix)
            finally:
                _unlock(prefix, fd)
        return removed


_live: set[Network] = set()
"""Networks entered and not yet closed: the atexit backstop closes them."""


@atexit.register
def _close_all() -> None:
    for network in list(_live):
        try:
            network.close()
        except Exception as error:
            print(f"netns: {error}", file=sys.stderr)


# --- helpers ------------------------------------------------------------------------------------------


def wait_port(host: Host, port: int, address: str | None = None, timeout: float = 10.0) -> bool:
    """True once TCP `address:port` accepts a connection from inside `host`'s namespace (names resolve
    through the Network's hosts file; default address: the host's own), False after `timeout` seconds."""
    target = host.address if address is None else address
    try:
        done = host.run(
            [sys.executable, "-I", "-c", _PROBE, target, str(port), str(timeout)], timeout=timeout + 10
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def available() -> str | None:
    """None if this process can build a Network (root, `ip` present or installable, namespaces,
    bridge, veth and /etc/netns name resolution all work), else the reason in words."""
    if os.geteuid() != 0:
        return f"network namespaces need root (running as uid {os.geteuid()})"
    try:
        ensure_ip()
    except (NetnsError, OSError, subprocess.SubprocessError) as error:
        return f"no iproute2: {error}"
    try:
        with Network() as probe:
            host = probe.add_host("probe")
            done = host.run(
                [sys.executable, "-I", "-c", "import socket; print(socket.gethostbyname('probe'))"],
                timeout=30,
                capture_output=True,
                text=True,
            )
            if done.stdout.strip() != host.address:
                return f"names do not resolve inside a namespace (/etc/netns hosts): {done.stderr.strip()}"
    except (NetnsError, OSError, subprocess.SubprocessError) as error:
        return f"cannot build a namespace network: {error}"
    return None
