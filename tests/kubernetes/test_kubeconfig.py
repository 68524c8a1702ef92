"""`load_configuration` on its own: the kubeconfig files as kubectl reads them, the credentials
each user kind yields (exec plugins run for real), the service account in a pod, the proxy.

No API server is needed: what the loader produces is the endpoint (server, TLS, proxy) and the
headers every request carries, and those are what these tests read.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.kubernetes.pki import Pki, data

from rollwise.api.errors import UserError
from rollwise.platforms.kubernetes import config
from rollwise.platforms.kubernetes.config import ClusterConfig, load_configuration

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No kubeconfig, cluster or proxy of the machine running the tests leaks in."""
    for name in (
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
        "POD_NAMESPACE",
        *PROXY_VARIABLES,
    ):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(config, "SERVICE_ACCOUNT", tmp_path / "no-service-account")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


def kubeconfig(
    path: Path,
    *,
    clusters: dict[str, dict[str, Any]] | None = None,
    users: dict[str, dict[str, Any]] | None = None,
    contexts: dict[str, dict[str, Any]] | None = None,
    current: str | None = None,
) -> Path:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in (clusters or {}).items()],
        "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
        "contexts": [{"name": n, "context": c} for n, c in (contexts or {}).items()],
    }
    if current is not None:
        body["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(body))
    return path


def single(
    path: Path,
    *,
    cluster: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    namespace: str | None = None,
) -> Path:
    """A kubeconfig with one cluster, one user and one current context, "only"."""
    context: dict[str, Any] = {"cluster": "only", "user": "only"}
    if namespace:
        context["namespace"] = namespace
    return kubeconfig(
        path,
        clusters={"only": cluster if cluster is not None else {"server": "https://127.0.0.1:6443"}},
        users={"only": user if user is not None else {"token": "t"}},
        contexts={"only": context},
        current="only",
    )


def load(path: Path, context: str | None = None) -> ClusterConfig:
    return load_configuration(kubeconfig=str(path), context=context)


def refused(path: Path | None = None, context: str | None = None) -> str:
    with pytest.raises(UserError) as caught:
        load_configuration(kubeconfig=None if path is None else str(path), context=context)
    return str(caught.value)


def header(cluster: ClusterConfig, name: str) -> list[str]:
    return [value for key, value in cluster.credentials.headers() if key == name]


# --- files, contexts and their errors ------------------------------------------------------------


def test_kubeconfig_files_merge_the_first_to_name_an_entry_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kubeconfig(
        tmp_path / "a" / "config",
        clusters={"shared": {"server": "https://first.test:6443"}},
        users={"shared": {"token": "first-token"}},
        contexts={"work": {"cluster": "shared", "user": "shared", "namespace": "team"}},
        current="work",
    )
    second = kubeconfig(
        tmp_path / "b" / "config",
        clusters={
            "shared": {"server": "https://second.test:6443"},
            "own": {"server": "http://own.test:8080/k8s/clusters/c-1/"},
        },
        users={"shared": {"token": "second-token"}, "mine": {"token": "mine"}},
        contexts={
            "work": {"cluster": "own", "user": "mine"},
            "play": {"cluster": "own", "user": "shared"},
        },
        current="play",
    )
    missing = tmp_path / "missing" / "config"  # a listed file that does not exist is skipped
    monkeypatch.setenv("KUBECONFIG", f"{missing}:{first}:{second}")

    current = load_configuration()
    assert current.endpoint.url == "https://first.test:6443"
    assert current.namespace == "team"
    assert header(current, "Authorization") == ["Bearer first-token"]

    chosen = load_configuration(context="play")
    assert chosen.endpoint.url == "http://own.test:8080/k8s/clusters/c-1"
    assert (chosen.endpoint.host, chosen.endpoint.port) == ("own.test", 8080)
    assert chosen.endpoint.prefix == "/k8s/clusters/c-1"
    assert chosen.endpoint.ssl_context is None
    assert chosen.namespace == "default"
    assert header(chosen, "Authorization") == ["Bearer first-token"]  # "shared" of the first


def test_the_first_file_setting_current_context_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clusters = {"c": {"server": "https://one.test"}, "d": {"server": "https://two.test"}}
    contexts = {"one": {"cluster": "c"}, "two": {"cluster": "d"}}
    first = kubeconfig(tmp_path / "first", clusters=clusters)  # no current-context
    second = kubeconfig(tmp_path / "second", contexts=contexts, current="two")
    third = kubeconfig(tmp_path / "third", current="one")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}:{third}")
    loaded = load_configuration()
    assert loaded.endpoint.url == "https://two.test"
    assert loaded.endpoint.port == 443
    assert loaded.credentials.headers() == []  # a context without a user: no credentials


def test_the_default_kubeconfig_is_read_from_home(tmp_path: Path) -> None:
    single(tmp_path / "home" / ".kube" / "config", cluster={"server": "http://home.test"})
    assert load_configuration().endpoint.url == "http://home.test"


def test_no_listed_kubeconfig_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'x'}:{tmp_path / 'y'}")
    message = refused()
    assert str(tmp_path / "x") in message
    assert "no such file" in message
    message = refused(tmp_path / "z")
    assert str(tmp_path / "z") in message
    assert "--kubeconfig" in message


def test_a_context_that_does_not_exist_is_named_with_the_known_ones(tmp_path: Path) -> None:
    path = single(tmp_path / "config")
    message = refused(path, context="prod")
    assert str(path) in message
    assert "'prod'" in message
    assert "contexts: only" in message


def test_a_kubeconfig_without_current_context_asks_for_one(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "config",
        clusters={"c": {"server": "https://c.test"}},
        contexts={"ctx": {"cluster": "c"}},
    )
    message = refused(path)
    assert str(path) in message
    assert "current-context" in message
    assert load(path, context="ctx").endpoint.host == "c.test"


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"cluster": "nowhere", "user": "u"}, "cluster 'nowhere' is not defined"),
        ({"cluster": "c", "user": "nobody"}, "user 'nobody' is not defined"),
        ({"user": "u"}, "names no cluster"),
    ],
)
def test_a_context_naming_what_is_not_there(
    tmp_path: Path, context: dict[str, str], expected: str
) -> None:
    path = kubeconfig(
        tmp_path / "config",
        clusters={"c": {"server": "https://c.test"}},
        users={"u": {"token": "t"}},
        contexts={"ctx": context},
        current="ctx",
    )
    message = refused(path)
    assert str(path) in message
    assert expected in message


def test_invalid_yaml_is_placed_by_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("apiVersion: v1\nclusters:\n- name: c\n  cluster: {server: [unclosed\n")
    message = refused(path)
    assert f"{path}:5:1" in message or f"{path}:4:" in message
    assert "not valid YAML" in message


def test_a_kubeconfig_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("- just\n- a list\n")
    assert "is a mapping" in refused(path)


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        ({"server": "127.0.0.1:6443"}, "is not an http(s):// URL"),
        ({"server": "ftp://c.test"}, "is not an http(s):// URL"),
        ({}, "is not an http(s):// URL"),
        (
            {"server": "https://c.test", "certificate-authority-data": "not base64!"},
            "certificate-authority-data is not base64",
        ),
        (
            {
                "server": "https://c.test",
                "certificate-authority-data": base64.b64encode(b"no PEM here").decode(),
            },
            "certificate-authority is not a PEM certificate",
        ),
        (
            {"server": "https://c.test", "certificate-authority": "missing-ca.crt"},
            "missing-ca.crt",
        ),
        ({"server": "https://c.test", "proxy-url": "socks5://127.0.0.1:1080"}, "socks5"),
    ],
)
def test_cluster_fields_that_cannot_be_used(
    tmp_path: Path, cluster: dict[str, Any], expected: str
) -> None:
    path = single(tmp_path / "config", cluster=cluster)
    message = refused(path)
    assert str(path) in message
    assert expected in message


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"exec": {"apiVersion": "client.authentication.k8s.io/v1"}}, "exec needs a command"),
        ({"token": "t", "username": "u", "password": "p"}, "both a token and a username"),
        ({"client-certificate-data": "%%%", "client-key-data": "%%%"}, "is not base64"),
        (
            {"client-certificate-data": base64.b64encode(b"x").decode()},
            "client-certificate or a client-key, not both",
        ),
        ({"tokenFile": "no-such-token"}, "no-such-token"),
        (
            {"auth-provider": {"name": "gcp", "config": {"access-token": "x"}}},
            "auth-provider 'gcp' is not supported",
        ),
    ],
)
def test_user_fields_that_cannot_be_used(
    tmp_path: Path, user: dict[str, Any], expected: str
) -> None:
    path = single(tmp_path / "config", user=user)
    message = refused(path)
    assert str(path) in message
    assert expected in message


def test_a_client_certificate_pair_that_does_not_load(tmp_path: Path, pki: Pki) -> None:
    certificate, _ = pki.client
    _, other_key = pki.server
    path = single(
        tmp_path / "config",
        user={"client-certificate-data": data(certificate), "client-key-data": data(other_key)},
    )
    assert "do not load as a PEM pair" in refused(path)


# --- credentials ---------------------------------------------------------------------------------


def test_a_relative_ca_and_token_file_are_read_from_the_kubeconfig_folder(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "kube"
    (folder / "certs").mkdir(parents=True)
    (folder / "certs" / "ca.crt").write_bytes(pki.ca.read_bytes())
    (folder / "token").write_text("token-from-file\n")
    path = single(
        folder / "config",
        cluster={"server": "https://c.test", "certificate-authority": "certs/ca.crt"},
        user={"tokenFile": "token"},
    )
    monkeypatch.chdir(tmp_path)  # not the kubeconfig's folder
    loaded = load(path)
    assert header(loaded, "Authorization") == ["Bearer token-from-file"]
    context = loaded.endpoint.ssl_context
    assert context is not None
    assert context.verify_mode.name == "CERT_REQUIRED"


def test_basic_authentication(tmp_path: Path) -> None:
    path = single(tmp_path / "config", user={"username": "admin", "password": "s3cr:t"})
    expected = "Basic " + base64.b64encode(b"admin:s3cr:t").decode()
    assert header(load(path), "Authorization") == [expected]


def test_an_oidc_id_token_is_the_bearer_token(tmp_path: Path) -> None:
    provider = {"name": "oidc", "config": {"id-token": "eyJ.id.token", "idp-issuer-url": "x"}}
    path = single(tmp_path / "config", user={"auth-provider": provider})
    assert header(load(path), "Authorization") == ["Bearer eyJ.id.token"]


def test_impersonation_sends_the_user_and_one_header_per_group(tmp_path: Path) -> None:
    path = single(
        tmp_path / "config",
        user={"token": "t", "as": "jane", "as-groups": ["devs", "system:masters"]},
    )
    loaded = load(path)
    assert header(loaded, "Impersonate-User") == ["jane"]
    # the API server takes each Impersonate-Group header as one group, commas included
    assert header(loaded, "Impersonate-Group") == ["devs", "system:masters"]
    assert header(loaded, "Authorization") == ["Bearer t"]


class Clock:
    """`time.monotonic`, moved forward at will."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._real: Callable[[], float] = time.monotonic

    def __call__(self) -> float:
        return self._real() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    ticking = Clock()
    monkeypatch.setattr(time, "monotonic", ticking)
    return ticking


def test_a_token_file_is_read_again_after_the_refresh_interval(
    tmp_path: Path, clock: Clock
) -> None:
    token = tmp_path / "token"
    token.write_text("first")
    loaded = load(single(tmp_path / "config", user={"tokenFile": str(token)}))
    assert header(loaded, "Authorization") == ["Bearer first"]
    token.write_text("second")
    assert header(loaded, "Authorization") == ["Bearer first"]  # not before the interval
    clock.offset += config.TOKEN_FILE_REFRESH + 1
    assert header(loaded, "Authorization") == ["Bearer second"]


# --- exec plugins --------------------------------------------------------------------------------

PLUGIN = """
import datetime, json, os, sys
log, mode, lifetime = sys.argv[1:4]
with open(log, "a") as out:
    out.write(json.dumps({
        "info": json.loads(os.environ["KUBERNETES_EXEC_INFO"]),
        "greeting": os.environ.get("GREETING"),
    }) + "\\n")
runs = sum(1 for _ in open(log))
if mode == "fail":
    print("looking up the account", file=sys.stderr)
    print("error: the session expired, run login", file=sys.stderr)
    sys.exit(3)
if mode == "garbage":
    print("Please open https://login.test in a browser")
    sys.exit(0)
status = {"token": f"exec-{runs}"}
if lifetime != "forever":
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        seconds=float(lifetime)
    )
    status["expirationTimestamp"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1",
    "kind": "ExecCredential",
    "status": status,
}))
"""


class Plugin:
    """An exec plugin (this Python running a script) that logs each run and what it was given."""

    def __init__(self, folder: Path) -> None:
        self.script = folder / "plugin.py"
        self.script.write_text(PLUGIN)
        self.log = folder / "runs.jsonl"

    def exec(self, *, mode: str = "ok", lifetime: str = "forever", **more: Any) -> dict[str, Any]:
        return {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(self.script), str(self.log), mode, lifetime],
            "interactiveMode": "Never",
            **more,
        }

    def runs(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def plugin(tmp_path: Path) -> Plugin:
    return Plugin(tmp_path)


def test_an_exec_plugin_token_is_kept_while_it_has_no_expiry(
    tmp_path: Path, plugin: Plugin, clock: Clock
) -> None:
    user = {"exec": plugin.exec(env=[{"name": "GREETING", "value": "hello"}])}
    loaded = load(single(tmp_path / "config", user=user))
    assert plugin.runs() == []  # not run before a request needs it
    assert header(loaded, "Authorization") == ["Bearer exec-1"]
    clock.offset += 3600
    assert header(loaded, "Authorization") == ["Bearer exec-1"]
    [run] = plugin.runs()
    assert run["greeting"] == "hello"
    assert run["info"]["apiVersion"] == "client.authentication.k8s.io/v1"
    assert run["info"]["kind"] == "ExecCredential"
    assert "cluster" not in run["info"]["spec"]  # provideClusterInfo was not asked for


def test_an_exec_plugin_is_run_again_when_its_credential_expires(
    tmp_path: Path, plugin: Plugin, clock: Clock
) -> None:
    loaded = load(single(tmp_path / "config", user={"exec": plugin.exec(lifetime="600")}))
    assert header(loaded, "Authorization") == ["Bearer exec-1"]
    assert header(loaded, "Authorization") == ["Bearer exec-1"]
    clock.offset += 600
    assert header(loaded, "Authorization") == ["Bearer exec-2"]
    assert len(plugin.runs()) == 2


def test_credentials_say_when_a_request_would_renew_them(
    tmp_path: Path, plugin: Plugin, clock: Clock
) -> None:
    # `due()` is what KubeClient asks to run the renewal in a thread (and only then)
    loaded = load(single(tmp_path / "a", user={"exec": plugin.exec(lifetime="600")}))
    credentials = loaded.credentials
    assert credentials.due()  # nothing cached yet: the first request runs the plugin
    assert plugin.runs() == []  # asking runs nothing
    header(loaded, "Authorization")
    assert not credentials.due()
    clock.offset += 600 - config.EXEC_EXPIRY_MARGIN - config.DUE_MARGIN
    assert credentials.due()  # about to be renewed
    assert len(plugin.runs()) == 1
    token = tmp_path / "token"
    token.write_text("t")
    from_file = load(single(tmp_path / "b", user={"tokenFile": str(token)})).credentials
    assert from_file.due()
    from_file.headers()
    assert not from_file.due()
    clock.offset += config.TOKEN_FILE_REFRESH
    assert from_file.due()
    assert not load(single(tmp_path / "c", user={"token": "t"})).credentials.due()
    assert not load(
        single(tmp_path / "d", user={"username": "u", "password": "p"})
    ).credentials.due()


def test_an_exec_credential_about_to_expire_is_not_reused(tmp_path: Path, plugin: Plugin) -> None:
    loaded = load(single(tmp_path / "config", user={"exec": plugin.exec(lifetime="-30")}))
    assert header(loaded, "Authorization") == ["Bearer exec-1"]
    assert header(loaded, "Authorization") == ["Bearer exec-2"]


def test_provide_cluster_info_hands_the_plugin_the_cluster(
    tmp_path: Path, plugin: Plugin, pki: Pki
) -> None:
    cluster = {
        "server": "https://10.0.0.1:6443",
        "certificate-authority": str(pki.ca),
        "tls-server-name": "kubernetes.test",
        "proxy-url": "http://proxy.test:3128",
    }
    user = {"exec": plugin.exec(provideClusterInfo=True)}
    loaded = load(single(tmp_path / "config", cluster=cluster, user=user))
    assert header(loaded, "Authorization") == ["Bearer exec-1"]
    [run] = plugin.runs()
    assert run["info"]["spec"]["cluster"] == {
        "server": "https://10.0.0.1:6443",
        "certificate-authority-data": data(pki.ca),
        "tls-server-name": "kubernetes.test",
        "proxy-url": "http://proxy.test:3128",
    }


def test_a_failing_exec_plugin_says_its_last_stderr_line(tmp_path: Path, plugin: Plugin) -> None:
    path = single(tmp_path / "config", user={"exec": plugin.exec(mode="fail")})
    loaded = load(path)
    with pytest.raises(UserError) as caught:
        loaded.credentials.headers()
    message = str(caught.value)
    assert str(path) in message
    assert "exited with 3" in message
    assert "error: the session expired, run login" in message
    assert "looking up the account" not in message


def test_an_exec_plugin_printing_no_credential(tmp_path: Path, plugin: Plugin) -> None:
    loaded = load(single(tmp_path / "config", user={"exec": plugin.exec(mode="garbage")}))
    with pytest.raises(UserError, match="did not print an ExecCredential"):
        loaded.credentials.headers()


def test_an_exec_plugin_giving_a_client_certificate_instead_of_a_token(tmp_path: Path) -> None:
    script = (
        "import json; print(json.dumps({'kind': 'ExecCredential', 'status': "
        "{'clientCertificateData': 'PEM', 'clientKeyData': 'PEM'}}))"
    )
    user = {"exec": {"command": sys.executable, "args": ["-c", script]}}
    loaded = load(single(tmp_path / "config", user=user))
    with pytest.raises(UserError) as caught:
        loaded.credentials.headers()
    assert "no status.token" in str(caught.value)
    assert "not clientCertificateData" in str(caught.value)


def test_an_exec_plugin_that_is_not_installed_shows_the_install_hint(tmp_path: Path) -> None:
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "rollwise-test-no-such-plugin",
            "installHint": "Install it with: brew install no-such-plugin\n",
        }
    }
    loaded = load(single(tmp_path / "config", user=user))
    with pytest.raises(UserError) as caught:
        loaded.credentials.headers()
    message = str(caught.value)
    assert "rollwise-test-no-such-plugin" in message
    assert "brew install no-such-plugin" in message


def test_a_relative_exec_command_runs_from_the_kubeconfig_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "kube"
    (folder / "bin").mkdir(parents=True)
    script = folder / "bin" / "plugin"
    script.write_text(
        f"#!{sys.executable}\nimport json\n"
        "print(json.dumps({'kind': 'ExecCredential', 'status': {'token': 'relative'}}))\n"
    )
    script.chmod(0o755)
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "./bin/plugin"}}
    path = single(folder / "config", user=user)
    monkeypatch.chdir(tmp_path)
    assert header(load(path), "Authorization") == ["Bearer relative"]


# --- in a pod ------------------------------------------------------------------------------------


@pytest.fixture
def service_account(tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    (folder / "token").write_text("sa-token-1\n")
    (folder / "ca.crt").write_bytes(pki.ca.read_bytes())
    (folder / "namespace").write_text("rollouts")
    monkeypatch.setattr(config, "SERVICE_ACCOUNT", folder)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    return folder


def test_in_a_pod_the_service_account_is_used(service_account: Path, clock: Clock) -> None:
    loaded = load_configuration()
    assert loaded.endpoint.url == "https://10.96.0.1:443"
    assert (loaded.endpoint.host, loaded.endpoint.port) == ("10.96.0.1", 443)
    assert loaded.endpoint.ssl_context is not None
    assert loaded.endpoint.proxy is None
    assert loaded.namespace == "rollouts"
    assert header(loaded, "Authorization") == ["Bearer sa-token-1"]
    (service_account / "token").write_text("sa-token-2\n")  # the kubelet rotates it
    clock.offset += config.TOKEN_FILE_REFRESH + 1
    assert header(loaded, "Authorization") == ["Bearer sa-token-2"]


def test_in_a_pod_an_ipv6_service_host_is_bracketed(
    service_account: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1")
    monkeypatch.setenv("POD_NAMESPACE", "from-the-downward-api")
    loaded = load_configuration()
    assert loaded.endpoint.url == "https://[fd00:10:96::1]:443"
    assert loaded.endpoint.host == "fd00:10:96::1"
    assert loaded.namespace == "from-the-downward-api"


def test_in_a_pod_without_a_namespace_file(service_account: Path) -> None:
    (service_account / "namespace").unlink()
    assert load_configuration().namespace == "default"


def test_neither_a_kubeconfig_nor_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")  # but no service account
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    message = refused()
    assert "no kubeconfig found" in message
    assert "not running in a cluster" in message
    assert "'prod' asked for" in refused(context="prod")


def test_a_kubeconfig_wins_over_the_service_account(service_account: Path, tmp_path: Path) -> None:
    single(tmp_path / "home" / ".kube" / "config", cluster={"server": "https://laptop.test"})
    assert load_configuration().endpoint.host == "laptop.test"


# --- proxies -------------------------------------------------------------------------------------


def test_the_proxy_of_the_environment_matches_the_server_scheme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://secure-proxy.test:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://plain-proxy.test:3128")
    secure = single(tmp_path / "a", cluster={"server": "https://api.example.com:6443"})
    plain = single(tmp_path / "b", cluster={"server": "http://api.example.com:8080"})
    assert load(secure).endpoint.proxy == "http://secure-proxy.test:3128"
    assert load(plain).endpoint.proxy == "http://plain-proxy.test:3128"


@pytest.mark.parametrize(
    ("no_proxy", "server", "proxied"),
    [
        ("example.com", "https://api.example.com:6443", False),
        (".example.com", "https://api.example.com:6443", False),
        ("other.test,api.example.com", "https://api.example.com:6443", False),
        ("*", "https://api.example.com:6443", False),
        ("other.test", "https://api.example.com:6443", True),
        ("10.96.0.1", "https://10.96.0.1", False),
        ("10.0.0.0/8", "https://10.96.0.1", False),  # CIDR, as Go (and so kubectl) reads it
        ("10.0.0.0/16", "https://10.96.0.1", True),
        ("fd00::/8", "https://[fd00:10:96::1]:443", False),
    ],
)
def test_no_proxy_names_hosts_that_are_reached_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_proxy: str, server: str, proxied: bool
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    loaded = load(single(tmp_path / "config", cluster={"server": server}))
    assert loaded.endpoint.proxy == ("http://proxy.test:3128" if proxied else None)


def test_the_kubeconfig_proxy_url_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://environment-proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "api.example.com")
    cluster = {"server": "https://api.example.com", "proxy-url": "http://kube-proxy.test:8888"}
    loaded = load(single(tmp_path / "config", cluster=cluster))
    assert loaded.endpoint.proxy == "http://kube-proxy.test:8888"


@pytest.mark.parametrize(
    "server",
    [
        "https://127.0.0.1:6443",
        "https://127.8.9.10:6443",
        "https://[::1]:6443",
        "https://[::ffff:127.0.0.1]:6443",
        "https://localhost:6443",
        "https://LocalHost:6443",
        "http://127.0.0.1:8080",
    ],
)
def test_a_loopback_server_never_takes_the_proxy_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    # as Go's httpproxy.useProxy (so kubectl): a kind cluster behind a corporate proxy
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.test:3128")
    assert load(single(tmp_path / "config", cluster={"server": server})).endpoint.proxy is None


@pytest.mark.parametrize("server", ["https://127.0.0.1:6443", "https://localhost:6443"])
def test_the_kubeconfig_proxy_url_is_for_loopback_servers_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    cluster = {"server": server, "proxy-url": "http://kube-proxy.test:8888"}
    loaded = load(single(tmp_path / "config", cluster=cluster))
    assert loaded.endpoint.proxy == "http://kube-proxy.test:8888"


def test_in_a_pod_a_loopback_service_host_takes_no_proxy_of_the_environment(
    service_account: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    assert load_configuration().endpoint.proxy == "http://proxy.test:3128"  # 10.96.0.1
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    assert load_configuration().endpoint.proxy is None


def test_a_socks_proxy_from_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    message = refused(single(tmp_path / "config", cluster={"server": "https://api.test:6443"}))
    assert "socks5://127.0.0.1:1080" in message
    assert "http(s) proxies only" in message
