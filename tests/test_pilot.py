"""The pilot without a network: folders and keys, signed bundles checked by Flower's own
verifier, the gateway's rule, each site's data on its own node (through the relay's direct
transport), resuming from the broadcasts, and every bad input in one sentence."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from fedviz.config import Config
from fedviz.engines.flower.direct import DirectTransport
from fedviz.engines.flower.nodes import NodeSetup
from fedviz.engines.flower.relay import FlowerRunError, Relay
from fedviz.engines.inprocess import run
from fedviz.events import FederatedRound, RunFinished, RunStarted
from fedviz.pilot import bundle, gateway, provision, runner
from fedviz.pilot.cli import main
from fedviz.pilot.folders import PilotError, SiteFolder
from fedviz.pilot.roles import check_site, site_config

PRIVATE = ("ca.key", "server.key", "publisher.key", "identity.key", "node.key")


def sites(tmp_path: Path, count: int = 3, rows: int = 60, columns: str = "age,bmi,bp,y") -> list[Path]:
    """Site files of a made-up regression: the same columns, different rows per site."""
    rng = np.random.default_rng(7)
    names = columns.split(",")
    out = []
    for k in range(count):
        X = rng.normal(loc=k, size=(rows + 10 * k, len(names) - 1))
        y = X @ np.arange(1, len(names)) + rng.normal(size=len(X))
        path = tmp_path / f"site{k + 1}.csv"
        path.write_text(
            columns + "\n" + "\n".join(",".join(f"{v:.6g}" for v in (*x, t)) for x, t in zip(X, y)) + "\n"
        )
        out.append(path)
    return out


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out, err)
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- folders


def test_init_gives_each_party_its_own_keys_and_nothing_else(tmp_path: Path) -> None:
    code, out, err = cli(
        "pilot", "init", str(tmp_path / "p"), "--hospitals", "3", "--coordinator", "10.7.0.1:9443"
    )
    assert code == 0 and err == "", err
    folders = {p.name: p for p in (tmp_path / "p").iterdir()}
    assert set(folders) == {"coordinator", "key-holder", "hospital-1", "hospital-2", "hospital-3"}
    coordinator = folders["coordinator"]
    assert {p.name for p in coordinator.iterdir()} >= {
        "ca.key",
        "ca.crt",
        "server.crt",
        "server.key",
        "roster.json",
    }
    assert not any((coordinator / k).exists() for k in ("identity.key", "node.key"))  # no site's secret
    for name in ("key-holder", "hospital-1"):
        files = {p.name for p in folders[name].iterdir()}
        assert files == {
            "ca.crt",
            "trusted-entities.yaml",
            "site.toml",
            "roster.json",
            "identity.key",
            "node.key",
            "node.key.pub",
        }
    for path in (tmp_path / "p").rglob("*"):
        if path.name in PRIVATE:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    cert = x509.load_pem_x509_certificate((coordinator / "server.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"10.7.0.1", "127.0.0.1"}
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    roster = json.loads((coordinator / "roster.json").read_text())
    assert list(roster) == ["Hospital 1", "Hospital 2", "Hospital 3", "Server"]
    for folder in ("key-holder", "hospital-2"):
        check_site(SiteFolder.open(folders[folder]))  # its identity is the roster's


def test_sites_make_their_own_keys_and_the_coordinator_enrols_them(tmp_path: Path) -> None:
    root = tmp_path / "p"
    assert (
        cli(
            "pilot",
            "init",
            str(root),
            "--hospitals",
            "2",
            "--coordinator",
            "coord.example",
            "--sites-make-keys",
        )[0]
        == 0
    )
    assert not list(root.rglob("identity.key")) and not list(root.rglob("node.key"))
    with pytest.raises(PilotError, match=r"identity.key is missing .* site keys"):
        check_site(SiteFolder.open(root / "hospital-1"))
    sent = []
    for party in ("hospital-1", "hospital-2", "key-holder"):
        code, out, _ = cli("site", "keys", str(root / party))
        assert code == 0 and "send" in out
        sent.append(str(root / party / f"{party}.keys.json"))
        assert "PRIVATE" not in (root / party / f"{party}.keys.json").read_text()
    code, out, err = cli("pilot", "enrol", str(root / "coordinator"), *sent)
    assert code == 0, err
    assert "Hospital 1" in out and "Server" in out and "fingerprints" in out
    assert sorted(p.name for p in (root / "coordinator" / "nodes").iterdir()) == [
        "hospital-1.pub",
        "hospital-2.pub",
        "key-holder.pub",
    ]
    with pytest.raises(PilotError, match=r"roster\.json is missing"):
        check_site(SiteFolder.open(root / "hospital-1"))
    for party in ("hospital-1", "hospital-2", "key-holder"):
        (root / party / "roster.json").write_text((root / "coordinator" / "roster.json").read_text())
        check_site(SiteFolder.open(root / party))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["pilot", "init", "{d}/p", "--hospitals", "1", "--coordinator", "c"], "a whole number from 2 to 78"),
        (["pilot", "init", "{d}/p", "--hospitals", "3", "--coordinator", "c:99999"], "port must be a number"),
        (["pilot", "init", "{d}/full", "--hospitals", "3", "--coordinator", "c"], "exists and is not empty"),
        (["pilot", "run", "{d}/nowhere"], "no such folder"),
        (["coordinator", "{d}/nowhere"], "no such folder"),
        (["site", "{d}/nowhere"], "no such folder"),
        (["site", "keys"], "name the site's folder"),
        (["pilot", "enrol", "{d}/p0/coordinator", "{d}/bogus.json"], "not a site's keys file"),
        (["pilot", "resume", "{d}/p0/coordinator", "20990101-000000"], "no run '20990101-000000'"),
    ],
)
def test_bad_input_is_one_line_naming_the_cause(tmp_path: Path, args: list[str], words: str) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "bogus.json").write_text("{}")
    provision.init(tmp_path / "p0", 3, "c")
    code, out, err = cli(*(a.format(d=tmp_path) for a in args))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and words in err, err
    assert "Traceback" not in err


def test_a_site_checks_its_own_data_before_anything_starts(tmp_path: Path) -> None:
    provision.init(tmp_path / "p", 3, "c")
    hospital = SiteFolder.open(tmp_path / "p" / "hospital-2")
    good = sites(tmp_path, 1)[0]
    config = site_config(hospital, str(good), "y", 0.25)
    assert config["partition-id"] == 1 and config["target"] == "y" and config["test-fraction"] == 0.25
    assert NodeSetup.from_node_config(config).data == str(good.resolve())
    bad = tmp_path / "bad.csv"
    bad.write_text("a,y\n1,2\nx,3\n")
    for data, target, words in (
        (None, None, "needs its own data: --data FILE.csv --target COLUMN"),
        (str(bad), "y", "Hospital 2 (hospital-2): Row 3, column 'a' of bad.csv is 'x', not a number"),
        (str(good), "nope", "has no column 'nope'"),
        (str(tmp_path / "missing.csv"), "y", "does not exist"),
    ):
        with pytest.raises(PilotError, match=None) as caught:
            site_config(hospital, data, target, 0.2)
        assert words in str(caught.value), str(caught.value)
    with pytest.raises(PilotError, match="the key holder holds no data"):
        site_config(SiteFolder.open(tmp_path / "p" / "key-holder"), str(good), "y", 0.2)


def test_a_node_refuses_a_node_config_key_it_does_not_know() -> None:
    from fedviz.crypto.sealing import SealError

    with pytest.raises(SealError, match="unknown node-config key 'site-name'"):
        NodeSetup.from_node_config({"role": "hospital", "identity": "i", "roster": "r", "site-name": "x"})


# --------------------------------------------------------------------------- signed bundles


def test_the_coordinator_signs_bundles_that_flower_verifies_and_nothing_else(tmp_path: Path) -> None:
    from flwr.supercore.fab import Fab
    from flwr.supernode.start_client_internal import _verify_fab

    provision.init(tmp_path / "p", 3, "c")
    coordinator = tmp_path / "p" / "coordinator"
    app = bundle.write_app(tmp_path / "app", {"topology": "ring", "fedviz-config": "{}"})
    fab = bundle.build(app)
    signed = bundle.sign(fab, coordinator / "publisher.key")
    import yaml  # Flower's own dependency: how the SuperNode reads --trusted-entities

    trusted = yaml.safe_load((tmp_path / "p" / "hospital-1" / "trusted-entities.yaml").read_text())
    assert _verify_fab(Fab("", fab, signed), trusted)
    tampered = fab[:-1] + bytes([fab[-1] ^ 1])
    assert not _verify_fab(Fab("", tampered, signed), trusted)
    other = tmp_path / "q"
    provision.init(other, 3, "c")
    forged = bundle.sign(fab, other / "coordinator" / "publisher.key")
    assert not _verify_fab(Fab("", fab, forged), trusted)


def test_the_gateway_passes_the_fleet_api_only() -> None:
    assert gateway.allowed("POST", "/v1/fleet/pull-messages")
    assert gateway.allowed("POST", "/v1/fleet/get-fab")
    for method, path in (
        ("POST", "/v1/control/start-run"),
        ("POST", "/v1/control/register-node"),
        ("POST", "/v1/runtime/acquire-task"),
        ("GET", "/v1/fleet/pull-messages"),
        ("GET", "/docs"),
        ("POST", "/v1/fleet/../control/start-run"),
    ):
        assert not gateway.allowed(method, path), (method, path)


# --------------------------------------------------------------------------- each site's own data


def relay_run(config: Config, **relay: object) -> list[object]:
    seen: list[object] = []
    transport = DirectTransport(config)
    try:
        Relay(transport, config, "ring", seen.append, **relay).run()  # type: ignore[arg-type]
    finally:
        transport.close()
    return seen


def test_each_site_trains_on_its_own_file_with_the_in_process_numbers(tmp_path: Path) -> None:
    files = tuple(str(p) for p in sites(tmp_path))
    config = Config(
        hospitals=3,
        key_length=1024,
        rounds=4,
        learning_rate=0.002,
        dataset="sites",
        site_paths=files,
        target="y",
        masks="pairwise",
    )
    seen = relay_run(config)
    started = next(e for e in seen if isinstance(e, RunStarted))
    assert started.patients == (48, 56, 64) and started.own_test_rows == (12, 14, 16)
    assert started.features == ("age", "bmi", "bp", "intercept")
    flower = next(e for e in seen if isinstance(e, RunFinished))
    local = next(e for e in run(config, pool=None) if isinstance(e, RunFinished))
    assert flower.federated_mse == local.federated_mse and flower.local_mse == local.local_mse


def test_sites_with_other_columns_are_refused_naming_the_site(tmp_path: Path) -> None:
    files = [str(p) for p in sites(tmp_path, 2)]
    (odd,) = sites(
        tmp_path / "odd" if (tmp_path / "odd").mkdir() is None else tmp_path, 1, columns="age,bmi,sex,y"
    )
    config = Config(
        hospitals=3, key_length=1024, rounds=2, dataset="sites", site_paths=(*files, str(odd)), target="y"
    )
    with pytest.raises(
        FlowerRunError, match=r"Hospital 3's data has columns \['age', 'bmi', 'sex'\], but Hospital 1's"
    ):
        relay_run(config)


def sites_config(folder: Path, rounds: int) -> Config:
    """Three sites' own files (see `sites`), 1024-bit keys."""
    files = tuple(str(p) for p in sites(folder))
    return Config(
        hospitals=3,
        key_length=1024,
        rounds=rounds,
        learning_rate=0.002,
        dataset="sites",
        site_paths=files,
        target="y",
    )


def test_a_resumed_run_replays_the_broadcasts_to_the_same_numbers(tmp_path: Path) -> None:
    config = sites_config(tmp_path, rounds=5)
    broadcasts = tmp_path / "broadcasts.jsonl"
    whole = relay_run(config, broadcasts=str(broadcasts))
    averages = [json.loads(line)["average"] for line in broadcasts.read_text().splitlines()]
    assert len(averages) == 5
    resumed = relay_run(config, replay=averages[:2])
    assert [e.round for e in resumed if isinstance(e, FederatedRound)] == [2, 3, 4, 5]
    done = [next(e for e in s if isinstance(e, RunFinished)) for s in (whole, resumed)]
    assert done[0].federated_mse == done[1].federated_mse

    # the coordinator's record of a run interrupted after round 2, then resumed
    folder = runner.RunFolder(tmp_path / "run")
    folder.path.mkdir()
    from fedviz.eventlog import to_line

    first = [
        e
        for e in whole
        if not isinstance(e, RunFinished) and not (isinstance(e, FederatedRound) and e.round > 1)
    ]
    (folder.path / "events-1.jsonl").write_text("".join(to_line(e) + "\n" for e in first))  # type: ignore[arg-type]
    (folder.path / "events-2.jsonl").write_text("".join(to_line(e) + "\n" for e in resumed))  # type: ignore[arg-type]
    record = runner.merged(folder)
    assert [m for m in record.federated] == [e.mse for e in whole if isinstance(e, FederatedRound)]
    assert record.finished is not None and record.finished.federated_mse == done[0].federated_mse


def test_a_site_that_never_joins_is_named(tmp_path: Path) -> None:
    config = Config(hospitals=3, key_length=1024, rounds=1)
    transport = DirectTransport(config)
    try:
        expected = {node: transport.setups[node].name for node in transport.nodes()}
        expected[4242] = "Hospital 4 (hospital-4)"  # registered, never started
        with pytest.raises(
            FlowerRunError, match=r"^Hospital 4 \(hospital-4\) did not connect within 0.2 s: its SuperNode"
        ):
            Relay(transport, config, "ring", lambda e: None, expected=expected, join_timeout_s=0.2).run()
    finally:
        transport.close()


def test_the_relay_refuses_a_run_setting_it_does_not_know() -> None:
    from fedviz.engines.flower.server_app import refuse_unknown

    refuse_unknown({"fedviz-config": "{}", "topology": "ring", "events-file": "e"})
    with pytest.raises(FlowerRunError, match="unknown run setting 'data-path'"):
        refuse_unknown({"fedviz-config": "{}", "data-path": "/site/own.csv"})


def test_a_nodes_process_imports_only_what_a_node_needs() -> None:
    """Flower starts a fresh ClientApp process for every message: the node's code must not
    pull in the dashboard's or the lab's libraries."""
    import subprocess
    import sys

    heavy = ("pandas", "sklearn", "scipy", "plotly", "streamlit", "dp_accounting", "fedviz.pilot")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, fedviz.engines.flower.client_app; print([m for m in {heavy!r} if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_site_that_just_restarted_is_asked_again_to_join() -> None:
    """Flower answers "node unavailable" to a site restarted a moment ago (its old connection
    has not yet been given up): the relay asks again rather than failing the run."""
    config = Config(hospitals=3, key_length=1024, rounds=1)
    transport = DirectTransport(config)
    asked = {"join": 0}
    real_ask = transport.ask

    def ask(requests, timeout_s):  # type: ignore[no-untyped-def]
        if requests[0][1] == "join":
            asked["join"] += 1
            if asked["join"] == 1:
                raise FlowerRunError("Hospital 2 failed at join: Error: Node Unavailable", unavailable=True)
        return real_ask(requests, timeout_s)

    transport.ask = ask  # type: ignore[method-assign]
    seen: list[object] = []
    try:
        Relay(transport, config, "ring", seen.append, join_timeout_s=30).run()
    finally:
        transport.close()
    assert asked["join"] == 2 and any(isinstance(e, RunFinished) for e in seen)
    with pytest.raises(FlowerRunError, match="did not answer"):  # other failures still end the run
        failing = DirectTransport(config)
        failing.silent.add("Hospital 1")
        try:
            Relay(failing, config, "ring", lambda e: None).run()
        finally:
            failing.close()


def test_a_run_cut_off_after_its_last_average_can_still_be_resumed(tmp_path: Path) -> None:
    """Every round's average was broadcast, but the hospitals never took the last step: the
    resumed part replays them all and finishes, with the uninterrupted numbers."""
    config = sites_config(tmp_path, rounds=3)
    broadcasts = tmp_path / "broadcasts.jsonl"
    whole = relay_run(config, broadcasts=str(broadcasts))
    averages = [json.loads(line)["average"] for line in broadcasts.read_text().splitlines()]
    resumed = relay_run(config, replay=averages)
    done = [next(e for e in s if isinstance(e, RunFinished)) for s in (whole, resumed)]
    assert done[0].federated_mse == done[1].federated_mse
    run = runner.RunFolder(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"status": "failed"}))
    assert not run.finished()
    (tmp_path / "summary.json").write_text(json.dumps({"status": "finished"}))
    assert run.finished()


def test_each_part_of_a_pilot_run_is_kept_in_the_run_store_once(tmp_path: Path, events, monkeypatch) -> None:
    import io

    from fedviz.store import RunStore

    monkeypatch.setenv("FEDVIZ_HOME", str(tmp_path / "home"))
    run = runner.RunFolder(tmp_path / "run-7")
    run.path.mkdir()
    whole = list(events(rounds=3))
    cut = [
        e
        for e in whole
        if not isinstance(e, RunFinished) and not (isinstance(e, FederatedRound) and e.round > 1)
    ]
    err = io.StringIO()
    first = runner.keep(run, cut, "site-2 did not answer within 60 s", 12.0, err)
    stored = RunStore().list()
    assert [(r.id, r.status, r.label) for r in stored] == [(first, "failed", "pilot run run-7")]
    assert stored[0].error == "site-2 did not answer within 60 s"
    assert f"kept in the run store as {first}" in err.getvalue()
    second = runner.keep(run, whole, None, 30.0, err)  # the resumed part finished it
    stored = RunStore().list()
    assert [(r.id, r.status) for r in stored] == [(second, "finished")]
    assert stored[0].summary["rounds_completed"]["federated"] == 3
    runner.keep(run, cut, "interrupted; continue with: python -m fedviz pilot resume ...", 5.0, err)
    assert [r.status for r in RunStore().list()] == ["interrupted"]
    monkeypatch.setenv("FEDVIZ_HOME", str(tmp_path / "run-7" / "stored-as"))  # a file, not a folder
    assert runner.keep(run, whole, None, 1.0, err) is None
    assert "was not kept in the run store: cannot write the run store" in err.getvalue().splitlines()[-1]
    assert runner.keep(run, [], "no site joined", 1.0, err) is None  # never started: nothing to say
    assert "was not kept" in err.getvalue().splitlines()[-1]
