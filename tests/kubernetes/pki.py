"""Certificates for the TLS tests, made with the `openssl` command (no Python crypto package).

`Pki.create(folder)` writes two certificate authorities (the cluster's and a stranger's), server
certificates for the API endpoint (one for 127.0.0.1 and `kubernetes.test`, one for the name
only) and a client certificate signed by the cluster's CA. EC P-256 keys keep it fast.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = "/usr/bin/openssl"


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run([OPENSSL, *args], cwd=folder, check=True, capture_output=True, timeout=30)


def _key(folder: Path, name: str) -> Path:
    _openssl(folder, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key")
    return folder / f"{name}.key"


def _authority(folder: Path, name: str) -> Path:
    _key(folder, name)
    _openssl(
        folder,
        "req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.crt",
        "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return folder / f"{name}.crt"


def _signed(folder: Path, name: str, ca: str, extensions: str) -> tuple[Path, Path]:
    _key(folder, name)
    _openssl(
        folder, "req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"
    )
    (folder / f"{name}.ext").write_text(extensions)
    _openssl(
        folder,
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
    )  # fmt: skip
    return folder / f"{name}.crt", folder / f"{name}.key"


@dataclass(frozen=True)
class Pki:
    ca: Path  # the cluster's CA certificate
    stranger_ca: Path  # a CA that signed nothing the server shows
    server: tuple[Path, Path]  # certificate, key: SAN IP 127.0.0.1 and DNS kubernetes.test
    named_server: tuple[Path, Path]  # SAN DNS kubernetes.test only
    client: tuple[Path, Path]  # CN=client, clientAuth, signed by `ca`

    @classmethod
    def create(cls, folder: Path) -> Pki:
        folder.mkdir(parents=True, exist_ok=True)
        server_usage = "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        return cls(
            ca=_authority(folder, "cluster-ca"),
            stranger_ca=_authority(folder, "stranger-ca"),
            server=_signed(
                folder,
                "server",
                "cluster-ca",
                server_usage + "subjectAltName=IP:127.0.0.1,DNS:kubernetes.test\n",
            ),
            named_server=_signed(
                folder,
                "named-server",
                "cluster-ca",
                server_usage + "subjectAltName=DNS:kubernetes.test\n",
            ),
            client=_signed(
                folder,
                "client",
                "cluster-ca",
                "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
            ),
        )


def data(path: Path) -> str:
    """The file as a kubeconfig `*-data` value (base64)."""
    return base64.b64encode(path.read_bytes()).decode()
