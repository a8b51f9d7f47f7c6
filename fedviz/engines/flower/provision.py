"""Who the parties are: identity keys and the roster, made once per deployment.

Across machines each site runs `Identity.save_new` itself, keeps the private key, and sends
the public key to be put in the roster every site receives out of band. On loopback the
launcher plays every site's administrator: it makes the keys in a private temporary
directory (mode 0700, each key 0600), points each node at its own key only, and deletes the
directory when the run ends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fedviz.crypto.sealing import Identity
from fedviz.protocol import SERVER_NAME, hospital_name


def node_configs(
    directory: Path, hospitals: int, sites: tuple[str, ...] = (), target: str = ""
) -> dict[str, dict[str, str | int]]:
    """Make every party's identity and the roster in `directory`; each party's node config
    (`sites`: each hospital's own CSV, read by its node with `target`)."""
    os.chmod(directory, 0o700)
    roster: dict[str, str] = {}
    configs: dict[str, dict[str, str | int]] = {}
    roster_path = directory / "roster.json"
    names = [hospital_name(i) for i in range(hospitals)] + [SERVER_NAME]
    for i, name in enumerate(names):
        key_path = directory / f"party-{i}.key"
        roster[name] = Identity.save_new(str(key_path)).hex()
        role = "key-holder" if name == SERVER_NAME else "hospital"
        configs[name] = {"role": role, "partition-id": i if role == "hospital" else -1}
        configs[name].update(identity=str(key_path), roster=str(roster_path))
        if sites and role == "hospital":
            configs[name].update(data=str(Path(sites[i]).resolve()), target=target)
    roster_path.write_text(json.dumps(roster, indent=1))
    return configs


def main(argv: list[str] | None = None) -> int:
    """`python -m fedviz.engines.flower.provision identity PATH`: a site makes its party's
    identity key (PATH, readable by its owner only) and prints the public key for the roster."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "identity":
        print("usage: python -m fedviz.engines.flower.provision identity PATH", file=sys.stderr)
        return 2
    try:
        public = Identity.save_new(args[1])
    except FileExistsError:
        print(f"error: {args[1]} exists; an identity key is never overwritten", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot write {args[1]}: {exc.strerror}", file=sys.stderr)
        return 1
    print(public.hex())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
