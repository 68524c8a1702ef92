"""Finding the cluster: a kubeconfig (path, $KUBECONFIG, ~/.kube/config) or the service account.

Where it sits: both transports to the API server — `KubeClient` (aiohttp, the controller) and
`BlockingTransport` (the standard library, the CLI) — start from `load_configuration`, so they
reach the same server with the same TLS, proxy and credentials. It reads the kubeconfig itself,
with the standard library and PyYAML only, as client-go reads it:

- `KUBECONFIG` may list several files (`:`-separated); they are merged, the first file to name a
  cluster, user or context wins, and the first `current-context` counts. Relative paths in a
  file are relative to that file's folder.
- cluster: `server`, `certificate-authority(-data)`, `insecure-skip-tls-verify`,
  `tls-server-name`, `proxy-url` (else `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`, never for
  localhost or a loopback address).
- user: `token` (else `tokenFile`, read again every minute), `client-certificate(-data)` and
  `client-key(-data)`, `username`/`password`, `exec` (the client.authentication.k8s.io
  ExecCredential plugins: aws, gke-gcloud-auth-plugin, kubelogin...; run again when the
  credential expires), `auth-provider: oidc` (its `id-token`), `as`/`as-groups`
  (impersonation).
- in a pod without a kubeconfig: the service account's token (read again every minute, as it
  rotates) and CA, `KUBERNETES_SERVICE_HOST`/`_PORT`.

Every problem is a UserError naming the file and the field.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from rollwise.api.errors import UserError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_REFRESH = 60.0  # seconds, as client-go re-reads a token file
EXEC_EXPIRY_MARGIN = 10.0  # seconds before expirationTimestamp an exec credential is renewed
DUE_MARGIN = 1.0  # seconds before a renewal `Credentials.due` says so (it is asked just before)

Obj = dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: scheme, host and port of the server, and how to reach it."""

    url: str  # scheme://host[:port][/prefix], no trailing slash
    scheme: str
    host: str
    port: int
    prefix: str  # a path the server is mounted under (rancher's /k8s/clusters/c-xxx), or ""
    ssl_context: ssl.SSLContext | None  # None for http://
    server_hostname: str | None  # what TLS checks the certificate against (tls-server-name)
    proxy: str | None  # an http(s):// proxy URL for this server, or None


@dataclass
class Credentials:
    """What authenticates each request; `headers()` is called per request.

    It is cheap except when `due()`: then it runs the exec plugin (`aws eks get-token`, about a
    second) or reads the token file, which an event loop does in a worker thread. One caller at
    a time renews; the others wait for its token (the lock), and read a valid one without it.
    """

    source: str  # for messages
    token: str | None = None
    token_file: Path | None = None
    basic: tuple[str, str] | None = None
    exec_config: Obj | None = None
    exec_cluster: Obj | None = None  # spec.cluster for provideClusterInfo
    impersonate: tuple[str | None, tuple[str, ...]] = (None, ())
    _cached: tuple[str, float] | None = field(default=None, repr=False)  # (token, valid until)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def headers(self) -> list[tuple[str, str]]:
        """(name, value) pairs; a name may repeat (one Impersonate-Group per group)."""
        headers: list[tuple[str, str]] = []
        token = self._bearer()
        if token:
            headers.append(("Authorization", f"Bearer {token}"))
        elif self.basic is not None:
            pair = f"{self.basic[0]}:{self.basic[1]}".encode()
            headers.append(("Authorization", "Basic " + base64.b64encode(pair).decode()))
        user, groups = self.impersonate
        if user:
            headers.append(("Impersonate-User", user))
        # the API server reads each Impersonate-Group header as one group, commas and all
        headers.extend(("Impersonate-Group", group) for group in groups)
        return headers

    def due(self) -> bool:
        """Whether `headers()` would run the exec plugin or read the token file (within
        DUE_MARGIN seconds: the caller decides, then calls it)."""
        if self.token or (self.token_file is None and self.exec_config is None):
            return False
        cached = self._cached
        return cached is None or time.monotonic() + DUE_MARGIN >= cached[1]

    def _bearer(self) -> str | None:
        if self.token:
            return self.token
        if self.token_file is None and self.exec_config is None:
            return None
        cached = self._cached  # a valid token is read without waiting for a renewal's lock
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now < self._cached[1]:
                return self._cached[0]
            if self.token_file is not None:
                token, until = (
                    _read_token_file(self.token_file, self.source),
                    now + TOKEN_FILE_REFRESH,
                )
            else:
                token, until = self._run_exec(now)
            self._cached = (token, until)
            return token

    def _run_exec(self, now: float) -> tuple[str, float]:
        status = run_exec_plugin(self.exec_config or {}, self.exec_cluster, self.source)
        token = status.get("token")
        if not token:
            raise UserError(
                f"{self.source}: the exec plugin's ExecCredential has no status.token "
                "(rollwise takes tokens from exec plugins, not clientCertificateData)"
            )
        return str(token), now + _seconds_left(status, self.source)


@dataclass(frozen=True)
class ClusterConfig:
    endpoint: Endpoint
    credentials: Credentials
    namespace: str
    source: str  # where it came from, for messages: a kubeconfig path or "in-cluster"


def load_configuration(
    *, kubeconfig: str | None = None, context: str | None = None
) -> ClusterConfig:
    """The kubeconfig at `kubeconfig`, else $KUBECONFIG, else ~/.kube/config, else in-cluster.

    UserError when none of them can be loaded (naming what was tried) or one is wrong.
    """
    paths = _kubeconfig_paths(kubeconfig)
    if paths:
        try:
            return _from_kubeconfig(paths, context)
        except UserError as error:
            if str(error).startswith("cannot load"):
                raise
            raise UserError(f"cannot load the kubeconfig {error}") from error.__cause__
    if context:
        raise UserError(f"context {context!r} asked for, but no kubeconfig was found")
    return _in_cluster()


# --- the kubeconfig ------------------------------------------------------------------------------


def _kubeconfig_paths(kubeconfig: str | None) -> list[Path]:
    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise UserError(
                f"cannot load the kubeconfig {kubeconfig}: no such file; give --kubeconfig PATH "
                "or set KUBECONFIG"
            )
        return [path]
    listed = os.environ.get("KUBECONFIG", "")
    if listed:
        paths = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
        existing = [p for p in paths if p.is_file()]  # client-go skips missing files of a list
        if not existing:
            raise UserError(
                f"cannot load the kubeconfig {listed}: no such file; give --kubeconfig PATH "
                "or set KUBECONFIG"
            )
        return existing
    default = Path("~/.kube/config").expanduser()
    return [default] if default.is_file() else []


@dataclass
class _Named:
    """One cluster, user or context entry and the file it came from."""

    body: Obj
    path: Path


def _read_kubeconfig(path: Path) -> Obj:
    try:
        text = path.read_text()
    except OSError as error:
        raise UserError(f"{path}: {error.strerror or error}") from error
    try:
        loaded = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: the kubeconfig is not valid YAML: {error}") from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UserError(f"{path}: a kubeconfig is a mapping (apiVersion: v1, kind: Config)")
    return loaded


def _from_kubeconfig(paths: list[Path], context_name: str | None) -> ClusterConfig:
    sections: dict[str, dict[str, _Named]] = {"clusters": {}, "users": {}, "contexts": {}}
    current: str | None = None
    for path in paths:
        config = _read_kubeconfig(path)
        current = current or config.get("current-context") or None
        for section, entries in sections.items():
            singular = section[:-1]
            for index, entry in enumerate(config.get(section) or []):
                if not isinstance(entry, dict) or not entry.get("name"):
                    raise UserError(f"{path}: {section}[{index}] needs a name")
                body = entry.get(singular) or {}
                if not isinstance(body, dict):
                    raise UserError(f"{path}: {section}[{index}].{singular} must be a mapping")
                entries.setdefault(str(entry["name"]), _Named(body, path))
    source = os.pathsep.join(str(p) for p in paths)
    name = context_name or current
    if not name:
        raise UserError(f"{source}: no current-context is set; give --kube-context NAME")
    if name not in sections["contexts"]:
        known = ", ".join(sorted(sections["contexts"])) or "none"
        raise UserError(f"{source}: no context named {name!r} (contexts: {known})")
    context = sections["contexts"][name]
    cluster = _pick(sections["clusters"], context, "cluster", source)
    user = _pick(sections["users"], context, "user", source) if context.body.get("user") else None
    namespace = str(context.body.get("namespace") or "default")
    endpoint, cluster_info = _endpoint(cluster.body, cluster.path, user)
    credentials = (
        _credentials(user, cluster_info) if user else Credentials(source=str(cluster.path))
    )
    return ClusterConfig(endpoint, credentials, namespace, source)


def _pick(entries: Mapping[str, _Named], context: _Named, key: str, source: str) -> _Named:
    wanted = context.body.get(key)
    if not wanted:
        raise UserError(f"{context.path}: the context names no {key}")
    if wanted not in entries:
        raise UserError(f"{source}: the context's {key} {wanted!r} is not defined under {key}s")
    return entries[str(wanted)]


def _file(path: Path, value: str) -> Path:
    """A path of the kubeconfig at `path`: relative to its folder, as client-go resolves it."""
    resolved = Path(value).expanduser()
    return resolved if resolved.is_absolute() else path.parent / resolved


def _data(body: Mapping[str, Any], key: str, path: Path) -> bytes:
    try:
        return base64.b64decode(str(body[key]), validate=True)
    except ValueError as error:
        raise UserError(f"{path}: {key} is not base64: {error}") from error


def _pem(body: Mapping[str, Any], key: str, path: Path) -> bytes | None:
    """The PEM of `key` (a file) or `key-data` (base64), or None."""
    if body.get(f"{key}-data"):
        return _data(body, f"{key}-data", path)
    if body.get(key):
        file = _file(path, str(body[key]))
        try:
            return file.read_bytes()
        except OSError as error:
            raise UserError(f"{path}: {key} {file}: {error.strerror or error}") from error
    return None


def _endpoint(cluster: Obj, path: Path, user: _Named | None) -> tuple[Endpoint, Obj]:
    server = str(cluster.get("server") or "")
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"{path}: the cluster's server {server!r} is not an http(s):// URL "
            "(e.g. https://127.0.0.1:6443)"
        )
    ssl_context, ca = None, None
    if parts.scheme == "https":
        ca = _pem(cluster, "certificate-authority", path)
        ssl_context = _ssl_context(ca, bool(cluster.get("insecure-skip-tls-verify")), path)
        if user is not None:
            _load_client_certificate(ssl_context, user)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname
    proxy = cluster.get("proxy-url") or _environment_proxy(parts.scheme, host)
    if proxy and urlsplit(str(proxy)).scheme not in ("http", "https"):
        raise UserError(
            f"{path}: proxy-url {proxy!r}: rollwise reaches clusters through http(s) proxies only"
        )
    info: Obj = {"server": server}  # what an exec plugin with provideClusterInfo is told
    for key in ("insecure-skip-tls-verify", "tls-server-name", "proxy-url"):
        if key in cluster:
            info[key] = cluster[key]
    if ssl_context is not None and ca is not None:
        info["certificate-authority-data"] = base64.b64encode(ca).decode()
    endpoint = Endpoint(
        url=server.rstrip("/"),
        scheme=parts.scheme,
        host=host,
        port=port,
        prefix=parts.path.rstrip("/"),
        ssl_context=ssl_context,
        server_hostname=str(cluster.get("tls-server-name") or "") or None,
        proxy=str(proxy) if proxy else None,
    )
    return endpoint, info


def _ssl_context(ca: bytes | None, insecure: bool, path: Path) -> ssl.SSLContext:
    if ca is not None and not insecure:
        # as client-go: the kubeconfig's CA is the only one trusted, not the machine's too
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca is not None:
        try:
            context.load_verify_locations(cadata=ca.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError) as error:
            raise UserError(
                f"{path}: certificate-authority is not a PEM certificate: {error}"
            ) from error
    return context


def _load_client_certificate(context: ssl.SSLContext, user: _Named) -> None:
    body, path = user.body, user.path
    certificate = _pem(body, "client-certificate", path)
    key = _pem(body, "client-key", path)
    if certificate is None and key is None:
        return
    if certificate is None or key is None:
        raise UserError(f"{path}: the user has a client-certificate or a client-key, not both")
    _load_pair(context, certificate, key, str(path))


def _load_pair(context: ssl.SSLContext, certificate: bytes, key: bytes, source: str) -> None:
    # `load_cert_chain` reads files only: a private folder, removed as soon as they are read
    with tempfile.TemporaryDirectory(prefix="rollwise-tls-") as folder:
        cert_file, key_file = Path(folder, "tls.crt"), Path(folder, "tls.key")
        for file, data in ((cert_file, certificate), (key_file, key)):
            file.touch(mode=0o600)
            file.write_bytes(data)
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as error:
            raise UserError(
                f"{source}: the client certificate and key do not load as a PEM pair: {error}"
            ) from error


def _environment_proxy(scheme: str, host: str) -> str | None:
    """HTTPS_PROXY / HTTP_PROXY for `scheme`, unless `host` is loopback or NO_PROXY names it.

    As Go's net/http (httpproxy.useProxy), so as kubectl: `localhost` and loopback addresses
    are never sent to the environment's proxy (a kind cluster on 127.0.0.1 behind a corporate
    HTTPS_PROXY is reached directly); a kubeconfig `proxy-url` is not asked here and applies to
    every host.
    """
    from urllib.request import (  # type: ignore[attr-defined]
        getproxies_environment,
        proxy_bypass_environment,
    )

    proxies = getproxies_environment()
    proxy = proxies.get(scheme)
    if not proxy or host.lower() == "localhost":
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None if proxy_bypass_environment(host, proxies) else proxy
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is loopback to Go too
    if address.is_loopback or (mapped is not None and mapped.is_loopback):
        return None
    # An IP: NO_PROXY may name it or a CIDR holding it (10.96.0.0/12 for a cluster's services,
    # as Go reads it); the standard library compares the text and mistakes IPv6 for host:port.
    for entry in proxies.get("no", "").split(","):
        entry = entry.strip().strip("[]")
        if entry == "*":
            return None
        with contextlib.suppress(ValueError):
            if address in ipaddress.ip_network(entry, strict=False):
                return None
    return proxy


def _credentials(user: _Named, cluster_info: Obj) -> Credentials:
    body, path = user.body, user.path
    source = str(path)
    credentials = Credentials(source=source)
    if body.get("token"):
        credentials.token = str(body["token"])
    elif body.get("tokenFile"):
        credentials.token_file = _file(path, str(body["tokenFile"]))
        _read_token_file(credentials.token_file, source)  # a missing file is said now
    elif body.get("exec"):
        credentials.exec_config = _exec_config(body["exec"], path)
        if credentials.exec_config.get("provideClusterInfo"):
            credentials.exec_cluster = cluster_info
    elif body.get("auth-provider"):
        credentials.token = _auth_provider_token(body["auth-provider"], path)
    if body.get("username") or body.get("password"):
        if credentials.token or credentials.token_file or credentials.exec_config:
            raise UserError(f"{path}: the user has both a token and a username/password")
        credentials.basic = (str(body.get("username") or ""), str(body.get("password") or ""))
    groups = body.get("as-groups") or []
    credentials.impersonate = (str(body["as"]) if body.get("as") else None, tuple(map(str, groups)))
    return credentials


def _exec_config(config: Any, path: Path) -> Obj:
    if not isinstance(config, dict) or not config.get("command"):
        raise UserError(f"{path}: user.exec needs a command (and apiVersion)")
    command = str(config["command"])
    if os.sep in command and not Path(command).is_absolute():
        command = str(_file(path, command))  # client-go: relative to the kubeconfig's folder
    return {**config, "command": command}


def run_exec_plugin(config: Obj, cluster: Obj | None, source: str) -> Obj:
    """Run a client.authentication.k8s.io exec plugin; its ExecCredential's status."""
    api_version = str(config.get("apiVersion") or "client.authentication.k8s.io/v1beta1")
    spec: Obj = {"interactive": False}
    if cluster is not None:
        spec["cluster"] = cluster
    environment = dict(os.environ)
    for entry in config.get("env") or []:
        environment[str(entry.get("name"))] = str(entry.get("value") or "")
    environment["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": spec}
    )
    command = [str(config["command"]), *(str(a) for a in config.get("args") or [])]
    where = f"{source}: user.exec"
    try:
        done = subprocess.run(
            command, env=environment, stdin=subprocess.DEVNULL, capture_output=True, check=False
        )
    except OSError as error:
        hint = f" ({config['installHint'].strip()})" if config.get("installHint") else ""
        raise UserError(
            f"{where}: cannot run {command[0]}: {error.strerror or error}{hint}"
        ) from error
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise UserError(f"{where}: {command[0]} exited with {done.returncode}: {said[0]}")
    try:
        credential = json.loads(done.stdout)
        status = credential["status"]
        if not isinstance(status, dict):
            raise TypeError("status is not a mapping")
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"{where}: {command[0]} did not print an ExecCredential with a status: {error}"
        ) from error
    return status


def _seconds_left(status: Mapping[str, Any], source: str) -> float:
    """How long an exec credential may be used from now (forever without expirationTimestamp)."""
    stamp = status.get("expirationTimestamp")
    if not stamp:
        return float("inf")
    try:
        expires = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError as error:
        raise UserError(
            f"{source}: the exec plugin's expirationTimestamp {stamp!r}: {error}"
        ) from error
    return max(0.0, expires.timestamp() - time.time() - EXEC_EXPIRY_MARGIN)


def _auth_provider_token(provider: Any, path: Path) -> str:
    name = provider.get("name") if isinstance(provider, dict) else None
    config = (provider.get("config") or {}) if isinstance(provider, dict) else {}
    if name == "oidc" and config.get("id-token"):
        return str(config["id-token"])
    raise UserError(
        f"{path}: user.auth-provider {name!r} is not supported (kubectl dropped the gcp and azure "
        "providers too): use an exec plugin (gke-gcloud-auth-plugin, kubelogin) or a token"
    )


def _read_token_file(path: Path, source: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as error:
        raise UserError(
            f"{source}: cannot read the token file {path}: {error.strerror or error}"
        ) from error


# --- in a pod ------------------------------------------------------------------------------------


def _in_cluster() -> ClusterConfig:
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    token = SERVICE_ACCOUNT / "token"
    if not host or not port or not token.is_file():
        raise UserError(
            "no kubeconfig found (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not running "
            "in a cluster (no KUBERNETES_SERVICE_HOST/PORT or service account token)"
        )
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    ca_file = SERVICE_ACCOUNT / "ca.crt"
    ca = ca_file.read_bytes() if ca_file.is_file() else None
    endpoint = Endpoint(
        url=server,
        scheme="https",
        host=host,
        port=int(port),
        prefix="",
        ssl_context=_ssl_context(ca, False, ca_file),
        server_hostname=None,
        proxy=_environment_proxy("https", host),
    )
    credentials = Credentials(source="in-cluster", token_file=token)
    return ClusterConfig(endpoint, credentials, _in_cluster_namespace(), "in-cluster")


def _in_cluster_namespace() -> str:
    if "POD_NAMESPACE" in os.environ:
        return os.environ["POD_NAMESPACE"]
    namespace = SERVICE_ACCOUNT / "namespace"
    if namespace.exists():
        return namespace.read_text().strip() or "default"
    return "default"
