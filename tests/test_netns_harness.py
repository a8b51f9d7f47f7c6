"""The namespace harness: hosts reach each other by name, addresses exist only inside their
namespaces, and nothing (namespace, /etc/netns dir, veth, process, lock) outlives a Network."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import netns
import pytest
from conftest import alive, wait_until
from netns import NETNS_ETC_DIR, Host, NetnsError, Network, available, wait_port

HERE = Path(__file__).parent
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


@pytest.fixture(autouse=True, scope="module")
def _requires_namespaces() -> None:
    """Fail (never skip) with the reason when namespaces cannot be built here."""
    reason = available()
    assert reason is None, f"network namespaces unavailable: {reason}"


def root_view() -> tuple[list[str], list[str]]:
    """The root namespace's interface names and its "interface address/length" pairs (`ip -o addr`)."""
    lines = subprocess.check_output(["ip", "-o", "addr"], text=True).splitlines()
    return netns._root_interfaces(), [" ".join(line.split()[1:4:2]) for line in lines]


def assert_gone(prefix: str, namespaces: list[str], pids: list[int]) -> None:
    """Nothing of a Network with `prefix` is left: no namespace, /etc/netns dir, root veth, process, lock."""
    listed = subprocess.check_output(["ip", "netns", "list"], text=True)
    assert not [line for line in listed.splitlines() if line.startswith(f"{prefix}-")], listed
    assert not [ns for ns in namespaces if (NETNS_ETC_DIR / ns).exists()]
    assert not [name for name in netns._root_interfaces() if name.startswith(prefix)]
    assert not (netns.LOCK_DIR / f"fedviz-netns-{prefix}.lock").exists()
    assert not [pid for pid in pids if alive(pid)]


def test_hosts_reach_each_other_by_name_and_only_inside(tmp_path: Path) -> None:
    token = f"only-inside-{os.getpid()}"
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / token).touch()
    log = tmp_path / "server.log"
    interfaces_before, addresses_before = root_view()
    with Network() as net:
        coordinator = net.add_host("coordinator")
        hospital = net.add_host("hospital-1")
        assert (coordinator.address, hospital.address) == ("10.231.0.1", "10.231.0.2")
        assert coordinator.namespace == f"{net.prefix}-coordinator"
        with log.open("w") as server_log:
            server = coordinator.popen(
                [sys.executable, "-m", "http.server", "-b", coordinator.address, "8765"],
                cwd=tmp_path / "www",
                stdout=server_log,
                stderr=server_log,
            )
        assert wait_port(hospital, 8765, "coordinator", timeout=10)
        fetch = "import urllib.request; print(urllib.request.urlopen('http://coordinator:8765/', timeout=5).read())"
        done = hospital.run([sys.executable, "-c", fetch], timeout=20, capture_output=True, text=True)
        assert token in done.stdout, done.stderr
        assert server.pid in coordinator.pids()

        # Addresses exist only inside: the root namespace gained no interface or address, and its
        # request never reaches the server (it fails, or whatever answers out there is not our server:
        # a sandbox may have an egress proxy that accepts every connection).
        assert root_view() == (interfaces_before, addresses_before)
        assert not [pair for pair in addresses_before if " 10.231.0." in pair], addresses_before
        try:
            body = urllib.request.urlopen(f"http://{coordinator.address}:8765/", timeout=2).read()
        except OSError:  # no route, refused, timed out, or an HTTP error from someone else
            body = b""
        assert token.encode() not in body
        # The server logged exactly one request, the hospital's.
        requests = [line for line in log.read_text().splitlines() if '"GET ' in line]
        assert len(requests) == 1 and requests[0].startswith(f"{hospital.address} "), requests
    assert root_view() == (interfaces_before, addresses_before)
    assert server.returncode == -signal.SIGKILL


def test_every_name_resolves_in_every_namespace_even_added_later() -> None:
    names = ["coordinator", "key-holder", "hospital-1", "hospital-2", "hospital-3"]
    lookup = "import socket, sys; print(*(socket.gethostbyname(n) for n in sys.argv[1:]))"
    with Network() as net:
        first = net.add_host(names[0])
        # A process started before the others were added still learns their names (in-place rewrite).
        early = first.popen(
            [sys.executable, "-c", f"import sys; sys.stdin.readline(); {lookup}", *names],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hosts = [first] + [net.add_host(name) for name in names[1:]]
        expected = " ".join(host.address for host in hosts)
        for host in hosts:
            file = (NETNS_ETC_DIR / host.namespace / "hosts").read_text()
            assert file.startswith("127.0.0.1\tlocalhost\n") and file == net.hosts_file()
            done = host.run(
                [sys.executable, "-c", lookup, "localhost", *names], timeout=20, capture_output=True
            )
            assert done.stdout.decode().split() == ["127.0.0.1", *expected.split()]
        assert early.communicate("go\n", timeout=20)[0].strip() == expected
        assert (NETNS_ETC_DIR / first.namespace / "hosts").stat().st_size == len(net.hosts_file())


def test_everything_is_gone_after_the_block() -> None:
    with Network() as net:
        host = net.add_host("coordinator")
        net.add_host("hospital-1")
        sleeper = host.popen(["sleep", "60"])
        namespaces = net.namespaces
        assert len(namespaces) == 3 and all((NETNS_ETC_DIR / ns).is_dir() for ns in namespaces[1:])
        assert set(namespaces) <= set(netns._netns_names())
        assert Path(netns.LOCK_DIR / f"fedviz-netns-{net.prefix}.lock").exists()
    assert_gone(net.prefix, namespaces, [sleeper.pid])
    assert sleeper.returncode == -signal.SIGKILL
    with pytest.raises(NetnsError):
        net.add_host("late")
    net.close()  # idempotent


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_exception_inside_the_block_still_cleans_up(error: type[BaseException]) -> None:
    with pytest.raises(error), Network() as net:
        sleeper = net.add_host("coordinator").popen(["sleep", "60"])
        namespaces = net.namespaces
        raise error("boom")
    assert_gone(net.prefix, namespaces, [sleeper.pid])


STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
if os.fork() == 0:  # a daemon: new session, parent gone, outside the Popen's process group
    os.setsid()
    if os.fork() == 0:
        print(os.getpid(), flush=True)
        time.sleep(60)
    os._exit(0)
time.sleep(0.2)
print(child.pid, flush=True)
time.sleep(60)
"""


def start_stubborn(host: Host) -> list[int]:
    """Processes in `host` that ignore SIGTERM, one of them daemonised out of the process group."""
    process = host.popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    pids = [process.pid, int(process.stdout.readline()), int(process.stdout.readline())]
    assert all(alive(pid) for pid in pids) and set(pids) <= set(host.pids())
    os.kill(pids[0], signal.SIGTERM)
    return pids


def test_processes_that_ignore_sigterm_or_daemonise_are_still_killed() -> None:
    with Network() as net:
        host = net.add_host("coordinator")
        pids = start_stubborn(host)
        namespaces = net.namespaces
        listed = subprocess.check_output(["ip", "netns", "pids", host.namespace], text=True).split()
        assert set(map(int, listed)) == set(host.pids())
    assert_gone(net.prefix, namespaces, pids)


def test_kill_all_empties_one_host_and_the_network_goes_on() -> None:
    with Network() as net:
        host = net.add_host("coordinator")
        other = net.add_host("hospital-1")
        pids = start_stubborn(host)
        bystander = other.popen(["sleep", "60"])
        assert host.kill_all()
        assert host.pids() == [] and not any(alive(pid) for pid in pids)
        assert bystander.poll() is None
        assert host.run(["true"], timeout=10).returncode == 0


def test_run_times_out_and_kills_its_group() -> None:
    with Network() as net:
        host = net.add_host("coordinator")
        with pytest.raises(subprocess.TimeoutExpired):
            host.run(["sh", "-c", "sleep 60 & sleep 60"], timeout=0.3)
        assert wait_until(lambda: host.pids() == [], timeout=5)
        with pytest.raises(subprocess.CalledProcessError):
            host.run(["false"], timeout=10, check=True)
        assert host.run(["cat"], timeout=10, input=b"hi", capture_output=True).stdout == b"hi"


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`code` (given `args` as sys.argv[1:]) in a fresh interpreter that can `import netns`."""
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_atexit_closes_a_network_never_exited() -> None:
    done = run_python("""
        import netns, subprocess, sys
        net = netns.Network().__enter__()
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}  # the pipe must not outlive us
        sleeper = net.add_host("coordinator").popen(["sleep", "60"], **quiet)
        print(net.prefix, sleeper.pid, *net.namespaces)
        sys.exit(0)
    """)
    assert done.returncode == 0, done.stderr
    prefix, pid, *namespaces = done.stdout.split()
    assert_gone(prefix, namespaces, [int(pid)])


def test_cleanup_stale_removes_a_killed_run_but_not_a_live_one() -> None:
    base = f"fvt{secrets.token_hex(2)}"  # this run's own: a concurrent suite's stale test cannot interfere
    done = run_python(
        """
        import netns, os, signal, subprocess, sys
        net = netns.Network(sys.argv[1]).__enter__()
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}  # the pipe must not outlive us
        sleeper = net.add_host("coordinator").popen(["sleep", "60"], **quiet)
        print(net.prefix, sleeper.pid, *net.namespaces, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no __exit__, no atexit
    """,
        base,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    prefix, pid, *namespaces = done.stdout.split()
    assert set(namespaces) <= set(netns._netns_names()) and alive(int(pid))
    with Network(base) as live:
        live_host = live.add_host("coordinator")
        removed = Network.cleanup_stale(base)
        assert sorted(removed) == sorted(namespaces)
        assert_gone(prefix, namespaces, [int(pid)])
        assert Network.cleanup_stale(base) == []
        assert live_host.run(["true"], timeout=10).returncode == 0  # untouched: its lock is held
        assert set(live.namespaces) <= set(netns._netns_names())


def test_names_are_checked_and_interface_names_fit() -> None:
    for bad in ["Bad", "a-b", "8ball", "prefixtoolong"]:
        with pytest.raises(ValueError):
            Network(bad)
    assert len(Network("abcdefg").prefix) == 11 and Network("abcdefg", unique=False).prefix == "abcdefg"
    with Network() as net:
        for bad in ["br", "Coordinator", "-x", "a_b", ""]:
            with pytest.raises(ValueError):
                net.add_host(bad)
        net.add_host("coordinator")
        with pytest.raises(ValueError):
            net.add_host("coordinator")
        inside = subprocess.check_output(["ip", "-n", net.bridge_namespace, "-o", "link"], text=True)
        ends = [line.split(":")[1].strip().split("@")[0] for line in inside.splitlines()]
        assert "br0" in ends and all(len(name) <= netns.IFNAMSIZ for name in ends)


def test_a_missing_ip_is_installed_with_apt_get(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """First `install` fails (as on a clean machine without package lists), so it updates and retries."""
    log = tmp_path / "apt.log"
    apt = tmp_path / "apt-get"
    apt.write_text(
        f'#!/bin/sh\necho "$DEBIAN_FRONTEND $*" >> {log}\n'
        f'[ "$1" = install ] && [ ! -e {tmp_path}/updated ] && exit 100\n'
        f'[ "$1" = update ] && touch {tmp_path}/updated\nexit 0\n'
    )
    apt.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    found = iter([None, "/usr/sbin/ip"])
    monkeypatch.setattr(netns, "_find_ip", lambda: next(found))
    monkeypatch.setattr(netns, "_ip_path", None)
    assert netns.ensure_ip() == "/usr/sbin/ip"
    assert log.read_text().splitlines() == [
        "noninteractive install -y -qq iproute2",
        "noninteractive update -qq",
        "noninteractive install -y -qq iproute2",
    ]


def test_a_host_that_fails_halfway_tears_the_network_down(monkeypatch: pytest.MonkeyPatch) -> None:
    real_ip = netns._ip

    def failing_ip(*args: str, check: bool = True, timeout: float = 30.0) -> str:
        if "addr" in args and "add" in args:
            raise NetnsError("injected failure")
        return real_ip(*args, check=check, timeout=timeout)

    with Network() as net:
        monkeypatch.setattr(netns, "_ip", failing_ip)
        with pytest.raises(NetnsError, match="injected"):
            net.add_host("coordinator")
        monkeypatch.setattr(netns, "_ip", real_ip)
        namespaces = [net.bridge_namespace, f"{net.prefix}-coordinator"]
        assert_gone(net.prefix, namespaces, [])
        with pytest.raises(NetnsError):
            net.add_host("hospital-1")


def test_ctrl_c_during_cleanup_waits_until_cleanup_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    real_kill = netns._kill_namespace

    def interrupted_kill(ns_id: netns.NsId, label: str, timeout: float) -> list[int]:
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C, right in the middle of cleanup
        return real_kill(ns_id, label, timeout)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # even if run as a background job
    try:
        with pytest.raises(KeyboardInterrupt), Network() as net:
            sleeper = net.add_host("coordinator").popen(["sleep", "60"])
            namespaces = net.namespaces
            monkeypatch.setattr(netns, "_kill_namespace", interrupted_kill)
    finally:
        signal.signal(signal.SIGINT, previous)
        monkeypatch.setattr(netns, "_kill_namespace", real_kill)
    assert_gone(net.prefix, namespaces, [sleeper.pid])


def test_proxy_variables_are_not_passed_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://nowhere:1")
    monkeypatch.setenv("grpc_proxy", "http://nowhere:1")
    with Network() as net:
        host = net.add_host("coordinator")
        inherited = host.run(["env"], timeout=10, capture_output=True, text=True).stdout
        assert "nowhere" not in inherited and f"PATH={os.environ['PATH']}" in inherited
        explicit = host.run(["env"], timeout=10, capture_output=True, text=True, env={"A": "1"}).stdout
        assert explicit.split() == ["A=1"]


def test_a_forked_child_exiting_leaves_the_parents_network_alone() -> None:
    done = run_python("""
        import netns, os, sys
        with netns.Network() as net:
            net.add_host("coordinator")
            if os.fork() == 0:
                sys.exit(0)  # runs atexit in the child
            os.wait()
            print(set(net.namespaces) <= set(netns._netns_names()))
    """)
    assert done.returncode == 0 and done.stdout.split() == ["True"], done.stderr


def test_two_networks_at_once_are_separate_even_on_the_same_subnet() -> None:
    with Network() as one, Network() as two:
        assert one.prefix != two.prefix
        first, second = one.add_host("coordinator"), two.add_host("coordinator")
        client = two.add_host("hospital-1")
        assert first.address == second.address == "10.231.0.1"
        server = first.popen([sys.executable, "-m", "http.server", "-b", first.address, "8765"], **QUIET)
        assert wait_port(first, 8765, "coordinator", timeout=10)
        assert not wait_port(client, 8765, "coordinator", timeout=0.3)  # same name and address, other network
        assert server.poll() is None
