"""The pilot's commands (`python -m fedviz pilot ...`, `coordinator`, `site`), with the main
CLI's contract: bad input is one line `error: ...` naming the party and the cause, exit 2; a
role or a run that fails is one such line, exit 1; never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from fedviz.commandline import EXIT_BAD_INPUT, EXIT_FAILED
from fedviz.commandline import Parser as _Parser
from fedviz.config import ENCODINGS, GRADIENT_MODES, MASKS, MODELS, OBFUSCATORS, Config, parse_number
from fedviz.errors import ConfigError, DataError, FedvizError

COMMANDS = ("pilot", "coordinator", "site")


def _experiment_flags(p: argparse.ArgumentParser) -> None:
    d = Config()
    p.add_argument(
        "--rounds",
        default=str(d.rounds),
        metavar="R",
        help=f"local and federated rounds (default {d.rounds})",
    )
    p.add_argument(
        "--key-length", default=str(d.key_length), metavar="BITS", help="Paillier modulus bits (default 2048)"
    )
    p.add_argument(
        "--learning-rate", default=str(d.learning_rate), metavar="ETA", help="step size (default 0.01)"
    )
    p.add_argument(
        "--seed", default=str(d.seed), metavar="S", help="each site shuffles its rows with it (default 42)"
    )
    p.add_argument("--model", default=d.model, metavar="|".join(MODELS), help="linear or logistic regression")
    p.add_argument(
        "--gradient", default=d.gradient, metavar="|".join(GRADIENT_MODES), help="sum (the post) or mean"
    )
    p.add_argument("--encoding", default=d.encoding, metavar="|".join(ENCODINGS), help="packed or per-value")
    p.add_argument(
        "--obfuscator", default=d.obfuscator, metavar="|".join(OBFUSCATORS), help="djn or standard"
    )
    p.add_argument("--cold-start", action="store_true", help="federated rounds start from zero")
    p.add_argument(
        "--dp-epsilon", default=None, metavar="EPS", help="differential privacy over the federated rounds"
    )
    p.add_argument("--dp-delta", default=f"{d.dp_delta:g}", metavar="D", help="delta of the DP guarantee")
    p.add_argument("--dp-clip", default=f"{d.dp_clip:g}", metavar="C", help="per-patient clip norm under DP")
    p.add_argument("--masks", default=d.masks, metavar="|".join(MASKS), help="pairwise masks on the ring")
    p.add_argument("--topology", default="ring", metavar="ring|star", help="the post's ring, or a star")
    p.add_argument(
        "--builtin-data",
        action="store_true",
        help="a dry run on the post's diabetes split instead of the sites' own files (start the hospitals' "
        "sites without --data)",
    )


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--patience",
        default="60",
        metavar="SECONDS",
        help="how long the relay waits for one site's answer before it names the site and stops (default 60)",
    )
    p.add_argument("--json", action="store_true", help="the run summary as one JSON object on the last line")
    p.add_argument("--events", action="store_true", help="every event as one JSON line on stdout")
    p.add_argument(
        "--no-save",
        action="store_true",
        help="do not keep the run in the coordinator's run store (kept by default: python -m fedviz runs list)",
    )


def build_parser() -> argparse.ArgumentParser:
    root = _Parser(prog="python -m fedviz", description="A pilot between real hosts.")
    commands = root.add_subparsers(dest="command", required=True, parser_class=_Parser)

    pilot = commands.add_parser("pilot", help="make the folders, enrol keys, run and resume")
    steps = pilot.add_subparsers(dest="step", required=True, parser_class=_Parser)
    init = steps.add_parser(
        "init", help="one folder per party: DIR/coordinator, DIR/key-holder, DIR/hospital-K"
    )
    init.add_argument("directory", metavar="DIR")
    init.add_argument("--hospitals", required=True, metavar="N")
    init.add_argument("--coordinator", required=True, metavar="HOST[:PORT]", help="what sites connect to")
    init.add_argument(
        "--sites-make-keys",
        action="store_true",
        help="leave every private key to its site (`site keys`), then `pilot enrol` what they send",
    )
    enrol = steps.add_parser(
        "enrol", help="the sites' public keys into the roster and the node registrations"
    )
    enrol.add_argument("coordinator", metavar="DIR/coordinator")
    enrol.add_argument("files", nargs="+", metavar="SITE.keys.json")
    run = steps.add_parser("run", help="build and sign the app, run it, follow it, report")
    run.add_argument("coordinator", metavar="DIR/coordinator")
    _experiment_flags(run)
    _outputs(run)
    resume = steps.add_parser("resume", help="continue a run that stopped, from its last finished round")
    resume.add_argument("coordinator", metavar="DIR/coordinator")
    resume.add_argument("run", metavar="RUN", help="the run's id (its folder under runs/), or latest")
    _outputs(resume)

    coordinator = commands.add_parser("coordinator", help="run the coordinator (SuperLink and Fleet gateway)")
    coordinator.add_argument("folder", metavar="DIR/coordinator")
    coordinator.add_argument(
        "--short-waits", action="store_true", help="see the README's Speed on Flower (off by default)"
    )

    site = commands.add_parser("site", help="run a site's SuperNode, or `site keys FOLDER`")
    site.add_argument("folder", metavar="DIR/hospital-K | DIR/key-holder | keys")
    site.add_argument("keys_folder", nargs="?", metavar="FOLDER", help=argparse.SUPPRESS)
    site.add_argument(
        "--data", default=None, metavar="FILE.csv", help="a hospital's own CSV (it never leaves)"
    )
    site.add_argument("--target", default=None, metavar="COLUMN", help="the column to predict")
    site.add_argument(
        "--test-fraction", default="0.2", metavar="F", help="share of its rows held out (default 0.2)"
    )
    site.add_argument(
        "--short-waits", action="store_true", help="see the README's Speed on Flower (off by default)"
    )
    return root


def config_from(args: argparse.Namespace, hospitals: int) -> Config:
    from fedviz.cli import training_settings

    if args.topology not in ("ring", "star"):
        raise ConfigError("topology", args.topology, "ring or star")
    return Config(
        hospitals=hospitals,
        **training_settings(args),
        dataset="diabetes" if args.builtin_data else "sites",
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        return _main(list(sys.argv[1:] if argv is None else argv), out, err)
    except (ConfigError, DataError) as exc:
        err.write(f"error: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        err.write("error: interrupted\n")
        return EXIT_FAILED
    except FedvizError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_FAILED if getattr(exc, "failed", False) else EXIT_BAD_INPUT
    except Exception as exc:  # never a traceback
        err.write(f"error: unexpected failure ({type(exc).__name__}: {' '.join(str(exc).split())})\n")
        return EXIT_FAILED


def _main(argv: list[str], out: TextIO, err: TextIO) -> int:
    from fedviz.pilot import provision, roles, runner
    from fedviz.pilot.folders import CoordinatorFolder, PilotError

    args = build_parser().parse_args(argv)
    if args.command == "coordinator":
        return roles.coordinator(Path(args.folder), out, args.short_waits)
    if args.command == "site":
        if args.folder == "keys":
            if not args.keys_folder:
                raise PilotError(
                    "site keys: name the site's folder, e.g. `python -m fedviz site keys hospital-1`"
                )
            written = provision.site_keys(Path(args.keys_folder))
            out.write(
                f"made this site's identity key and node key in {written.parent} (private: they stay here); "
                f"send {written} to the coordinator\n"
            )
            return 0
        if args.keys_folder:
            raise PilotError(f"site: unexpected {args.keys_folder!r} after the folder")
        fraction = float(parse_number("test_fraction", args.test_fraction, float))
        return roles.site(Path(args.folder), args.data, args.target, fraction, out, args.short_waits)
    if args.step == "init":
        hospitals = int(parse_number("hospitals", args.hospitals, int))
        made = provision.init(Path(args.directory), hospitals, args.coordinator, args.sites_make_keys)
        out.write(f"made {len(made)} folders in {args.directory}: {', '.join(p.name for p in made)}\n")
        if args.sites_make_keys:
            out.write(
                "next: send each site its folder; each runs `python -m fedviz site keys FOLDER` and sends back "
                "the .keys.json it writes; then `python -m fedviz pilot enrol DIR/coordinator FILES`\n"
            )
        return 0
    if args.step == "enrol":
        done = provision.enrol(Path(args.coordinator), [Path(f) for f in args.files])
        coord = CoordinatorFolder.open(Path(args.coordinator))
        roster = coord.roster() if (coord.path / "roster.json").is_file() else {}
        out.write(
            f"enrolled {', '.join(done)}; roster fingerprints (compare them with each site by phone):\n"
        )
        for name, key in roster.items():
            out.write(f"  {name:<12} {provision.fingerprint(key)}\n")
        out.write(
            f"next: copy {coord.path / 'roster.json'} into every site's folder; (re)start the coordinator\n"
        )
        return 0
    folder = CoordinatorFolder.open(Path(args.coordinator))
    if args.step == "run":
        config = config_from(args, folder.hospitals)
        run = runner.new_run(folder, config, args.topology)
        return runner.execute(
            folder, run, False, out, err, args.events, args.json, _patience(args), save=not args.no_save
        )
    run = runner.open_run(folder, args.run)
    config, _ = run.settings()
    if run.finished():
        raise PilotError(f"run {run.id} has finished all {config.rounds} rounds: nothing to resume")
    runner.stop_stale(folder, run)
    return runner.execute(
        folder, run, True, out, err, args.events, args.json, _patience(args), save=not args.no_save
    )


def _patience(args: argparse.Namespace) -> float:
    seconds = float(parse_number("patience", args.patience, float))
    if not 5 <= seconds <= 3600:
        raise ConfigError("patience", args.patience, "between 5 and 3600 seconds")
    return seconds
