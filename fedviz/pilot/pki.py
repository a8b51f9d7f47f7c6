"""The pilot's keys and certificates, made with `cryptography` (no openssl shell-out).

- The coordinator's CA signs one TLS server certificate, valid for the address sites use
  (a DNS name or an IP) and for the SuperLink's own loopback use (127.0.0.1 and localhost:
  Flower's SuperExec connects there and checks the certificate).
- Each SuperNode has a node key (ECDSA P-384, OpenSSH format) that the SuperLink admits once
  registered; the coordinator has a publisher key (Ed25519, OpenSSH format) that signs app
  bundles, and every site trusts only its public half (`trusted_entities`).

Invariants: every private key is written with mode 0600 and never overwritten; public halves
are plain text a person can read and send by e-mail.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 825
"""How long the pilot's certificates last (the CA/Browser Forum's old limit: about 2 years)."""
PUBLISHER_KEY_ID = "fpk_fedviz_coordinator"
"""The name sites give the coordinator's app-signing key in their trusted entities."""


def write_private(path: Path, data: bytes) -> None:
    """A secret file, readable by its owner only; an existing one is never replaced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_public(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o644)


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedviz pilot"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def make_ca(folder: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The pilot's certificate authority: `ca.key` (0600) and `ca.crt` in `folder`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("fedviz pilot CA"))
        .issuer_name(_name("fedviz pilot CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(folder / "ca.key", _pem_key(key))
    write_public(folder / "ca.crt", cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def san_for(host: str) -> x509.GeneralName:
    """An IP address SAN for an address, a DNS SAN for a name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_server_cert(
    folder: Path, host: str, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> list[str]:
    """`server.key` (0600) and `server.crt` for the coordinator, valid for `host` and for the
    SuperLink's own loopback use; returns the names it is valid for."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = list(dict.fromkeys([host, "127.0.0.1", "localhost"]))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([san_for(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_private(folder / "server.key", _pem_key(key))
    write_public(folder / "server.crt", cert.public_bytes(serialization.Encoding.PEM))
    return names


def load_ca(folder: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key, x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())


def _write_ssh_key(
    key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey, private_path: Path, comment: str
) -> str:
    """The private key in OpenSSH format (0600) at `private_path`, its public line beside it
    as `<name>.pub`; returns the public line (`<type> AAAA… comment`)."""
    write_private(
        private_path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ),
    )
    raw = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = raw.decode().strip() + " " + comment
    write_public(private_path.with_name(private_path.name + ".pub"), (line + "\n").encode())
    return line


def make_node_key(private_path: Path, comment: str) -> str:
    """A SuperNode's authentication key (ECDSA P-384, what Flower's node authentication takes)."""
    return _write_ssh_key(ec.generate_private_key(ec.SECP384R1()), private_path, comment)


def make_publisher_key(private_path: Path) -> str:
    """The coordinator's app-signing key (Ed25519, what Flower's trusted entities take)."""
    return _write_ssh_key(Ed25519PrivateKey.generate(), private_path, "fedviz-coordinator")


def load_publisher_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 key")
    return key


def trusted_entities(publisher_line: str) -> str:
    """The YAML a SuperNode's `--trusted-entities` reads: the one key allowed to sign apps."""
    return f"{PUBLISHER_KEY_ID}: '{publisher_line}'\n"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
