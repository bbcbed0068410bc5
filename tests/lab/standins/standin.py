"""kubelab lab stand-ins for the Kubernetes and flannel release binaries.

The local lab cannot download the real binaries, so its artifact mirror serves executables
built from this module (``build()`` in this package) under the real names. A stand-in behaves
like the real program at its interface -- accepted flags, files it reads, endpoints it must
reach, ports it serves, systemd notification, exit codes -- and does nothing else: no
containers, no network devices, no Kubernetes API. Standard library only (python3 3.11).

Common to the daemons: flags checked against the embedded list of the real version (exit 1
on an unknown one), --version/--help exit 0, every flag or config field naming an input file
must be readable, READY=1 to $NOTIFY_SOCKET once serving, SIGTERM/SIGINT exit 0.
  kube-apiserver   required flags; GET /health on every --etcd-servers URL; HTTPS health
                   endpoints on --bind-address:--secure-port (6443)
  kube-controller-manager, kube-scheduler, kube-proxy, kubelet
                   GET /healthz of the apiserver named by their kubeconfig (TLS, client cert),
                   then health endpoints on 10257 / 10259 / 10256 / 10250 (+10248)
  kubelet          also the CRI socket (containerRuntimeEndpoint) must accept connections
  flanneld         etcd mode: network config and subnet lease through the etcd v3 gateway,
                   writes the subnet file; creates no interfaces and no iptables rules
  kubectl, flannel CNI plugin: only `version --client` / CNI_COMMAND=VERSION

KUBELAB_STANDIN_TIMEOUT (seconds) overrides every startup wait (etcd, kube-apiserver, CRI
socket, flannel network config and lease); the unit tests set it low.
"""

import base64
import http.client
import ipaddress
import json
import os
import posixpath
import re
import signal
import socket
import socketserver
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

TIMEOUT_ENV = "KUBELAB_STANDIN_TIMEOUT"
RETRY_INTERVAL = 0.5
HEALTH_PATHS = ("/healthz", "/livez", "/readyz")

KUBE_SHORTHANDS = {"v": "v", "h": "help"}
# Kubernetes flags naming a file read at startup, besides every name ending in "-file".
KUBE_FILE_FLAGS = frozenset(
    {
        "authentication-kubeconfig",
        "authorization-kubeconfig",
        "config",
        "etcd-cafile",
        "etcd-certfile",
        "etcd-keyfile",
        "kubeconfig",
        "kubelet-certificate-authority",
        "kubelet-client-certificate",
        "kubelet-client-key",
    }
)
OUTPUT_FILE_FLAGS = frozenset({"log-file", "lock-file"})  # written by the daemon, not read
CONFIG_KINDS = {
    "kubelet": "KubeletConfiguration",
    "kube-scheduler": "KubeSchedulerConfiguration",
    "kube-proxy": "KubeProxyConfiguration",
}
DEFAULT_CRI_ENDPOINT = "unix:///run/containerd/containerd.sock"
NO_KUBECONFIG = (
    "invalid configuration: no configuration has been provided, "
    "try setting KUBERNETES_MASTER environment variable"
)

FLANNELD_FILE_FLAGS = ("etcd-cafile", "etcd-certfile", "etcd-keyfile")
FLANNELD_BOOLS = frozenset(
    {
        "ip-blackhole-route",
        "ip-masq",
        "ip-masq-fully-random-disable",
        "iptables-forward-rules",
        "kube-subnet-mgr",
        "set-node-network-unavailable",
        "version",
    }
)
GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool
GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
# The path flanneld checks; the unit tests point it elsewhere on a host without br_netfilter.
BR_NETFILTER = os.environ.get(
    "KUBELAB_STANDIN_BR_NETFILTER", "/proc/sys/net/bridge/bridge-nf-call-iptables"
)
FLANNEL_BACKENDS = frozenset(
    {
        "alloc",
        "extension",
        "host-gw",
        "ipip",
        "ipsec",
        "tencentvpc",
        "udp",
        "vxlan",
        "wireguard",
    }
)
BACKEND_MTU = {"vxlan": 1450, "udp": 1472, "ipip": 1480, "wireguard": 1420}  # else 1500

CNI_SPEC_VERSION = "1.1.0"
CNI_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


class Fatal(Exception):
    """Startup failed: the message is printed and the stand-in exits 1."""


class NotYet(Exception):
    """A dependency is not ready yet; retried until the startup timeout."""


RETRYABLE = (OSError, http.client.HTTPException, json.JSONDecodeError, NotYet)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def retry(what: str, attempt, default_timeout: float, interval: float = RETRY_INTERVAL):
    """Return ``attempt()`` once it stops raising a retryable error; Fatal after the timeout."""
    override = os.environ.get(TIMEOUT_ENV)
    deadline = time.monotonic() + (float(override) if override else default_timeout)
    while True:
        try:
            return attempt()
        except RETRYABLE as error:
            if time.monotonic() + interval > deadline:
                raise Fatal(f"{what}: {error}") from None
        time.sleep(interval)


class Flags:
    """Parsed flags; a repeated flag keeps every value, ``get`` returns the last one."""

    def __init__(self) -> None:
        self.values: dict[str, list[str]] = {}

    def add(self, name: str, value: str) -> None:
        self.values.setdefault(name, []).append(value)

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, [default])[-1]

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def items(self):
        for name, values in self.values.items():
            for value in values:
                yield name, value

    def __contains__(self, name: str) -> bool:
        return name in self.values


# --- command lines ---------------------------------------------------------------------------


def parse_kube_args(args: list[str], accepted: frozenset) -> tuple[Flags, list[str]]:
    """pflag syntax: --name=value, --name value, --name (boolean), -v=2, -v 2, -h; "_" == "-"."""
    flags, positional, rest = Flags(), [], list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            positional += rest
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        name, value = split_kube_flag(arg)
        if name not in accepted:
            raise Fatal(f"unknown flag: --{name}")
        if value is None:
            value = next_value(name, rest)
        flags.add(name, value)
    return flags, positional


def split_kube_flag(arg: str) -> tuple[str, str | None]:
    if arg.startswith("--"):
        name, equals, value = arg[2:].partition("=")
        return name.replace("_", "-"), value if equals else None
    short, value = arg[1], arg[2:].removeprefix("=")
    if short not in KUBE_SHORTHANDS:
        raise Fatal(f"unknown shorthand flag: {short!r} in {arg}")
    return KUBE_SHORTHANDS[short], value or None


def next_value(name: str, rest: list[str]) -> str:
    # The flag data has no types: a following word that is not a flag is taken as the value,
    # otherwise the flag is a boolean switch. File flags always take the next word.
    if is_kube_file_flag(name):
        if not rest:
            raise Fatal(f"flag needs an argument: --{name}")
        return rest.pop(0)
    if rest and not rest[0].startswith("-"):
        return rest.pop(0)
    return "true"


def parse_go_args(args: list[str], accepted: frozenset) -> Flags:
    """Go ``flag`` syntax: -name=value, --name=value, -name value; parsing stops at a non-flag."""
    flags, rest = Flags(), list(args)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        arg = rest.pop(0)
        if arg == "--":
            break
        name, equals, value = arg.lstrip("-").partition("=")
        if name in ("h", "help"):
            finish_help(sorted(accepted), "-", sys.stderr)
        if name not in accepted:
            raise Fatal(f"flag provided but not defined: -{name}")
        if name in FLANNELD_BOOLS:
            value = go_bool(name, value if equals else "true")
        elif not equals:
            if not rest:
                raise Fatal(f"flag needs an argument: -{name}")
            value = rest.pop(0)
        flags.add(name, value)
    return flags


def go_bool(name: str, value: str) -> str:
    if value in GO_TRUE:
        return "true"
    if value in GO_FALSE:
        return "false"
    raise Fatal(f'invalid boolean value "{value}" for -{name}: parse error')


def apply_env(flags: Flags, env_names: dict[str, str]) -> None:
    """flannel's SetFlagsFromEnv: FLANNELD_<FLAG> sets flags not given on the command line."""
    for name, variable in env_names.items():
        value = os.environ.get(variable, "")
        if not value or name in flags:
            continue
        try:
            flags.add(name, go_bool(name, value) if name in FLANNELD_BOOLS else value)
        except Fatal:
            log(f'Failed to set flag FLANNELD from env: invalid value "{value}" for {variable}')


def finish_help(names: list[str], dash: str, stream) -> None:
    lines = [f"  {dash}{name}" for name in names if name != "help"]
    print("Usage (kubelab stand-in; accepted flag names only):", *lines, sep="\n", file=stream)
    raise SystemExit(0)


def finish_version(text: str, stream) -> None:
    print(text, file=stream)
    raise SystemExit(0)


def is_set(flags: Flags, name: str) -> bool:
    return name in flags and flags.get(name) != "false"


# --- files -----------------------------------------------------------------------------------


def is_kube_file_flag(name: str) -> bool:
    if name in OUTPUT_FILE_FLAGS:
        return False
    return name in KUBE_FILE_FLAGS or name.endswith("-file")


def check_readable(what: str, path: str | Path) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise Fatal(f"{what}: open {path}: {error.strerror.lower()}") from None


def check_file_flags(flags: Flags, is_file_flag, dash: str) -> None:
    for name, value in flags.items():
        if value and is_file_flag(name):
            check_readable(f"{dash}{name}", value)


YAML_FIELD = re.compile(r"^(?P<indent>[ -]*)(?P<key>[A-Za-z0-9_.-]+):(?:\s+(?P<value>.*))?$")


def unquote(value: str | None) -> str:
    value = (value or "").strip()
    if value and value[0] in "\"'":
        end = value.find(value[0], 1)
        return value[1:end] if end > 0 else value[1:]
    return value.split(" #", 1)[0].strip()


def read_yaml_fields(path: str) -> dict[str, str]:
    """Scalar fields of a plain YAML mapping as {"dotted.path": value} (no YAML library)."""
    fields: dict[str, str] = {}
    parents: list[tuple[int, str]] = []
    for line in Path(path).read_text().splitlines():
        match = YAML_FIELD.match(line)
        if not match:
            continue
        indent, key, value = len(match["indent"]), match["key"], unquote(match["value"])
        while parents and parents[-1][0] >= indent:
            parents.pop()
        if value:
            fields.setdefault(".".join([name for _, name in parents] + [key]), value)
        else:
            parents.append((indent, key))
    return fields


def load_config(path: str, kind: str) -> dict[str, str]:
    """A --config file: the right kind, and every absolute file path in it readable."""
    fields = read_yaml_fields(path)
    if fields.get("kind") != kind:
        found = fields.get("kind")
        raise Fatal(f"failed to load config file {path}: kind is {found!r}, not {kind}")
    for key, value in fields.items():
        leaf = key.rsplit(".", 1)[-1]
        if (leaf.endswith("File") or leaf == "kubeconfig") and value.startswith("/"):
            check_readable(f"{path}: {key}", value)
    return fields


# --- clients ---------------------------------------------------------------------------------


def open_url(request, context: ssl.SSLContext | None, timeout: float = 2.0):
    # Straight to the address: no proxy from the environment.
    handlers = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers).open(request, timeout=timeout)


def expect_ok(url: str, context: ssl.SSLContext | None) -> None:
    try:
        with open_url(url, context) as response:
            response.read()
    except urllib.error.HTTPError as error:
        raise NotYet(f"GET {url}: HTTP {error.code}") from None


def post_json(url: str, body: dict, context: ssl.SSLContext | None) -> dict:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with open_url(request, context, timeout=3.0) as response:
        return json.loads(response.read() or b"{}")


def tls_client(cafile: str = "", certfile: str = "", keyfile: str = "") -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=cafile or None)
        if certfile or keyfile:
            context.load_cert_chain(certfile, keyfile or None)
    except OSError as error:  # ssl.SSLError included
        raise Fatal(f"invalid TLS client files {cafile} {certfile} {keyfile}: {error}") from None
    return context


def load_cert_pair(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl loads client certificates only from files.
    with tempfile.TemporaryDirectory() as directory:
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_path.write_bytes(cert)
        key_path.write_bytes(key)
        context.load_cert_chain(cert_path, key_path)


KUBECONFIG_FIELD = re.compile(r"^[ -]*(?P<key>[a-z-]+):[ \t]*(?P<value>\S.*)$", re.MULTILINE)


def kubeconfig_pem(fields: dict, name: str, base: Path) -> bytes | None:
    if fields.get(f"{name}-data"):
        return base64.b64decode(fields[f"{name}-data"])
    if fields.get(name):
        path = base / fields[name]
        check_readable(f"kubeconfig {name}", path)
        return path.read_bytes()
    return None


def read_kubeconfig(path: str) -> tuple[str, ssl.SSLContext]:
    """Server URL and TLS client context of a kubeconfig's first cluster and user."""
    fields: dict[str, str] = {}
    for match in KUBECONFIG_FIELD.finditer(Path(path).read_text()):
        fields.setdefault(match["key"], unquote(match["value"]))
    if not fields.get("server"):
        raise Fatal(f"invalid configuration: no server found for cluster in kubeconfig {path}")
    base = Path(path).parent
    try:
        ca = kubeconfig_pem(fields, "certificate-authority", base)
        context = ssl.create_default_context(cadata=ca.decode() if ca else None)
        if fields.get("insecure-skip-tls-verify") == "true":
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        cert = kubeconfig_pem(fields, "client-certificate", base)
        key = kubeconfig_pem(fields, "client-key", base)
        if cert and key:
            load_cert_pair(context, cert, key)
    except (ssl.SSLError, ValueError) as error:
        raise Fatal(f"kubeconfig {path}: invalid certificate data: {error}") from None
    return fields["server"], context


def wait_for_apiserver(kubeconfig: str, master: str = "") -> None:
    if kubeconfig:
        server, context = read_kubeconfig(kubeconfig)
    elif master:
        server, context = master, ssl.create_default_context()
    else:
        raise Fatal(NO_KUBECONFIG)
    server = master or server  # --master overrides the kubeconfig's server
    url = server.rstrip("/") + "/healthz"
    what = f"kube-apiserver {server} (kubeconfig {kubeconfig or 'none'}) did not answer {url}"
    retry(what, lambda: expect_ok(url, context), 30)
    log(f"kube-apiserver {server} is healthy")


# --- serving ---------------------------------------------------------------------------------


class HealthHandler(BaseHTTPRequestHandler):
    server_version = "kubelab-standin"
    timeout = 10

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in HEALTH_PATHS or path.startswith(tuple(p + "/" for p in HEALTH_PATHS)):
            self.reply(200, b"ok", "text/plain; charset=utf-8")
            return
        message = f"kubelab stand-in {self.server.standin_name} serves only health endpoints"
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": "Forbidden",
            "code": 403,
        }
        self.reply(403, json.dumps(body).encode(), "application/json")

    def reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass  # requests are not logged


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True
    standin_name = ""
    tls = False

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the bind address (getfqdn): skip that lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request, client_address) -> None:
        # TLS handshake in the request's thread, so a slow client cannot stall accept().
        request.settimeout(HealthHandler.timeout)
        if self.tls:
            request.do_handshake()
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address) -> None:
        log(f"request from {client_address[0]} failed: {sys.exc_info()[1]}")


class HealthServer6(HealthServer):
    address_family = socket.AF_INET6


def tls_server(cert: str, key: str, client_ca: str) -> ssl.SSLContext:
    """Serving certificate; client certificates are optional but verified against client_ca."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key or None)
        if client_ca:
            context.load_verify_locations(client_ca)
            context.verify_mode = ssl.CERT_OPTIONAL
    except OSError as error:  # ssl.SSLError included
        raise Fatal(f"invalid serving certificate {cert} / {key} / {client_ca}: {error}") from None
    return context


def serve(name: str, host: str, port: int, cert: str = "", key: str = "", client_ca: str = ""):
    """Answer health checks on host:port, over TLS when given a serving certificate."""
    server_class = HealthServer6 if ":" in host else HealthServer
    try:
        server = server_class((host, port), HealthHandler)
    except OSError as error:
        raise Fatal(f"failed to listen on {host}:{port}: {error.strerror}") from None
    server.standin_name = name
    if cert:
        context = tls_server(cert, key, client_ca)
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        server.tls = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log(f"serving {'https' if cert else 'http'} on {host}:{port}")


def to_int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise Fatal(f'invalid argument "{value}" for {what}: invalid syntax') from None


def to_port(value: str, what: str) -> int:
    port = to_int(value, what)
    if not 0 <= port <= 65535:
        raise Fatal(f"{what} must be between 0 and 65535, got {port}")
    return port


def split_host_port(value: str, default_port: int) -> tuple[str, int]:
    if value.startswith("["):
        host, _, port = value[1:].partition("]")
        port = port.lstrip(":")
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    return host or "0.0.0.0", to_port(port, value) if port else default_port


def notify_ready() -> None:
    """sd_notify READY=1 for Type=notify units."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"READY=1", address)
    except OSError as error:
        log(f"Failed to notify systemd the message READY=1: {error}")


def run_forever() -> int:
    notify_ready()
    log("ready")
    while True:
        signal.pause()


# --- Kubernetes components -------------------------------------------------------------------


def apiserver_flag_errors(flags: Flags) -> list[str]:
    errors = []
    if not flags.get("etcd-servers"):
        errors.append("--etcd-servers must be specified")
    if not flags.get("service-account-issuer"):
        errors.append("service-account-issuer is a required flag")
    if not (flags.get("service-account-signing-key-file") and flags.get("service-account-issuer")):
        errors.append(
            "--service-account-signing-key-file and --service-account-issuer are required flags"
        )
    return errors


def check_etcd(flags: Flags) -> None:
    context = tls_client(*(flags.get(f"etcd-{kind}") for kind in ("cafile", "certfile", "keyfile")))
    for server in flags.get("etcd-servers").split(","):
        if not server.startswith(("http://", "https://")):
            raise Fatal(f"--etcd-servers: {server!r} is not an http:// or https:// URL")
        url = server.rstrip("/") + "/health"
        retry(f"etcd {server} did not answer GET /health", lambda u=url: expect_ok(u, context), 20)
        log(f"etcd {server} is healthy")


def run_apiserver(name: str, flags: Flags) -> int:
    errors = apiserver_flag_errors(flags)
    if errors:
        raise Fatal(errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]")
    port = to_port(flags.get("secure-port", "6443"), "--secure-port")
    if port == 0:
        raise Fatal(
            "--secure-port must be between 1 and 65535, inclusive. It cannot be turned off with 0"
        )
    cert, key = flags.get("tls-cert-file"), flags.get("tls-private-key-file")
    if not (cert and key):
        raise Fatal(
            "the kubelab stand-in cannot self-sign into --cert-dir: set "
            "--tls-cert-file and --tls-private-key-file"
        )
    check_etcd(flags)
    serve(name, flags.get("bind-address", "0.0.0.0"), port, cert, key, flags.get("client-ca-file"))
    return run_forever()


def serve_secure_port(name: str, flags: Flags, default_port: int) -> None:
    # A real controller-manager/scheduler self-signs into --cert-dir when it has no
    # --tls-cert-file; the standard library cannot make certificates, so then it serves plain
    # HTTP on the same port (the port is what the specs check).
    port = to_port(flags.get("secure-port", str(default_port)), "--secure-port")
    if port:
        cert, key = flags.get("tls-cert-file"), flags.get("tls-private-key-file")
        serve(
            name, flags.get("bind-address", "0.0.0.0"), port, cert, key, flags.get("client-ca-file")
        )


def run_controller_manager(name: str, flags: Flags) -> int:
    wait_for_apiserver(flags.get("kubeconfig"), flags.get("master"))
    serve_secure_port(name, flags, 10257)
    return run_forever()


def run_scheduler(name: str, flags: Flags) -> int:
    kubeconfig = flags.get("kubeconfig")
    if flags.get("config"):  # with --config the deprecated --kubeconfig is ignored
        kubeconfig = load_config(flags.get("config"), CONFIG_KINDS[name]).get(
            "clientConnection.kubeconfig", ""
        )
    wait_for_apiserver(kubeconfig, flags.get("master"))
    serve_secure_port(name, flags, 10259)
    return run_forever()


def wait_for_socket(endpoint: str) -> None:
    if not endpoint.startswith("unix://"):
        raise Fatal(f"container runtime endpoint {endpoint}: only unix:// sockets are supported")
    path = endpoint.removeprefix("unix://")

    def attempt() -> None:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise NotYet(f"{path} is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)

    retry(f"container runtime is not available at {endpoint}", attempt, 30)
    log(f"container runtime socket {path} accepts connections")


def run_kubelet(name: str, flags: Flags) -> int:
    config = load_config(flags.get("config"), CONFIG_KINDS[name]) if flags.get("config") else {}

    def setting(flag: str, field: str, default: str) -> str:
        return flags.get(flag) or config.get(field) or default  # kubelet flags win over config

    wait_for_socket(
        setting("container-runtime-endpoint", "containerRuntimeEndpoint", DEFAULT_CRI_ENDPOINT)
    )
    if flags.get("kubeconfig"):  # without one the kubelet runs standalone
        wait_for_apiserver(flags.get("kubeconfig"))
    port = to_port(setting("port", "port", "10250"), "--port")
    serve(
        name,
        setting("address", "address", "0.0.0.0"),
        port,
        setting("tls-cert-file", "tlsCertFile", ""),
        setting("tls-private-key-file", "tlsPrivateKeyFile", ""),
        setting("client-ca-file", "authentication.x509.clientCAFile", ""),
    )
    healthz_port = to_port(setting("healthz-port", "healthzPort", "10248"), "--healthz-port")
    if healthz_port:
        serve(
            name, setting("healthz-bind-address", "healthzBindAddress", "127.0.0.1"), healthz_port
        )
    return run_forever()


def run_proxy(name: str, flags: Flags) -> int:
    config = load_config(flags.get("config"), CONFIG_KINDS[name]) if flags.get("config") else {}

    def setting(flag: str, field: str, default: str) -> str:
        return config.get(field) or flags.get(flag) or default  # kube-proxy's config wins

    wait_for_apiserver(
        setting("kubeconfig", "clientConnection.kubeconfig", ""), flags.get("master")
    )
    healthz = setting("healthz-bind-address", "healthzBindAddress", "0.0.0.0:10256")
    host, port = split_host_port(healthz, 10256)
    if port:
        serve(name, host, port)
    return run_forever()


KUBE_DAEMONS = {
    "kube-apiserver": run_apiserver,
    "kube-controller-manager": run_controller_manager,
    "kube-scheduler": run_scheduler,
    "kubelet": run_kubelet,
    "kube-proxy": run_proxy,
}


def run_kube_daemon(name: str, version: str, accepted: frozenset, args: list[str]) -> int:
    try:
        flags, positional = parse_kube_args(args, accepted)
    except Fatal as error:
        if name == "kubelet":
            raise Fatal(f"failed to parse kubelet flag: {error}") from None
        raise
    if is_set(flags, "help"):
        finish_help(sorted(accepted), "--", sys.stdout)
    if is_set(flags, "version"):
        finish_version(f"Kubernetes {version} (kubelab stand-in)", sys.stdout)
    if [arg for arg in positional if arg]:
        if name == "kubelet":
            raise Fatal(f"unknown command {positional[0]}")
        raise Fatal(f'"{name}" does not take any arguments, got {json.dumps(positional)}')
    check_file_flags(flags, is_kube_file_flag, "--")
    return KUBE_DAEMONS[name](name, flags)


def run_kubectl(version: str, args: list[str]) -> int:
    if args[:1] == ["version"] and {"--client", "--client=true"} & set(args[1:]):
        print(f"Client Version: {version} (kubelab stand-in)")
        return 0
    log(
        "kubectl stand-in: only 'kubectl version --client' is implemented; it cannot talk to "
        "a cluster"
    )
    return 1


# --- flannel ---------------------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class EtcdV3:
    """The etcd v3 KV API through etcd's JSON gateway (POST /v3/..., etcd 3.4 and later)."""

    def __init__(self, endpoints: list[str], context: ssl.SSLContext) -> None:
        self.endpoints = [endpoint.rstrip("/") for endpoint in endpoints if endpoint]
        self.context = context

    def call(self, method: str, body: dict) -> dict:
        errors = []
        for endpoint in self.endpoints:
            try:
                return post_json(f"{endpoint}/v3/{method}", body, self.context)
            except RETRYABLE as error:
                errors.append(f"{endpoint}: {error}")
        raise NotYet("; ".join(errors))

    def get_prefix(self, prefix: str) -> dict[str, bytes]:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        reply = self.call("kv/range", {"key": b64(prefix), "range_end": b64(end)})
        return {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
            for kv in reply.get("kvs", [])
        }

    def get(self, key: str) -> bytes | None:
        reply = self.call("kv/range", {"key": b64(key)})
        kvs = reply.get("kvs", [])
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None

    def put(self, key: str, value: str) -> None:
        self.call("kv/put", {"key": b64(key), "value": b64(value)})

    def create(self, key: str, value: str) -> bool:
        """Put ``key`` only if it does not exist yet."""
        absent = {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
        put = {"request_put": {"key": b64(key), "value": b64(value)}}
        reply = self.call("kv/txn", {"compare": [absent], "success": [put]})
        return bool(reply.get("succeeded"))  # proto3 JSON leaves out false


class NetworkConfig(NamedTuple):
    network: ipaddress.IPv4Network
    subnet_len: int
    subnet_min: ipaddress.IPv4Address
    subnet_max: ipaddress.IPv4Address
    backend_type: str
    vni: int


def default_subnet_len(network: ipaddress.IPv4Network) -> int:
    if network.prefixlen > 28:
        raise ValueError("Network is too small. Minimum useful network prefix is /28")
    return 24 if network.prefixlen <= 22 else network.prefixlen + 2


def parse_network_config(raw: bytes) -> NetworkConfig:
    """flannel's config rules (Network, SubnetLen, SubnetMin/Max, Backend); NotYet if invalid."""
    try:
        config = json.loads(raw)
        network = ipaddress.IPv4Network(config["Network"])
        subnet_len = int(config.get("SubnetLen") or default_subnet_len(network))
        if subnet_len > 30 or subnet_len < network.prefixlen + 2:
            raise ValueError(f"SubnetLen {subnet_len} does not fit Network {network}")
        size = 2 ** (32 - subnet_len)
        first = network.network_address + size  # flannel never hands out the first subnet
        last = network.network_address + network.num_addresses - size
        subnet_min = ipaddress.IPv4Address(config.get("SubnetMin") or first)
        subnet_max = ipaddress.IPv4Address(config.get("SubnetMax") or last)
        for bound in (subnet_min, subnet_max):
            if bound not in network or int(bound) % size:
                raise ValueError(f"{bound} is not a /{subnet_len} subnet of {network}")
        backend = config.get("Backend") or {"Type": "udp"}  # flannel's default backend
        backend_type, vni = backend.get("Type", ""), int(backend.get("VNI", 1))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise NotYet(f"invalid network config: {type(error).__name__}: {error}") from None
    return NetworkConfig(network, subnet_len, subnet_min, subnet_max, backend_type, vni)


def fetch_network_config(etcd: EtcdV3, prefix: str) -> NetworkConfig:
    key = posixpath.join(prefix, "config")

    def attempt() -> NetworkConfig:
        try:
            raw = etcd.get(key)
            if raw is None:
                raise NotYet("etcdserver: key not found")
            return parse_network_config(raw)
        except NotYet as error:
            log(f"Couldn't fetch network config: {error}")
            raise

    config = retry(f"Couldn't fetch network config {key}", attempt, 60, interval=1.0)
    log(f"Found network config - Backend type: {config.backend_type}")
    return config


def global_ipv4(device: str = "") -> str:
    command = ["ip", "-4", "-o", "addr", "show", "scope", "global"]
    if device:
        command += ["dev", device]
    try:
        output = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    except OSError as error:
        raise Fatal(f"Failed to find any valid interface to use: {error}") from None
    found = re.search(r"\sinet (\d+\.\d+\.\d+\.\d+)/", output)
    return found.group(1) if found else ""


def find_public_ip(flags: Flags) -> str:
    if flags.get("public-ip"):
        return flags.get("public-ip")
    for iface in flags.all("iface"):
        try:
            return str(ipaddress.IPv4Address(iface))
        except ValueError:
            address = global_ipv4(iface)
            if address:
                return address
    if flags.all("iface"):
        raise Fatal(
            "Failed to find interface to use that matches the interfaces and/or regexes provided"
        )
    address = global_ipv4()
    if not address:
        raise Fatal("Failed to find any valid interface to use: no global IPv4 address")
    return address


def lease_attrs(config: NetworkConfig, public_ip: str) -> str:
    data = None
    if config.backend_type == "vxlan":
        # A stand-in creates no flannel.1 device: the VTEP MAC is derived from the public IP.
        octets = ipaddress.IPv4Address(public_ip).packed
        mac = ":".join(f"{byte:02x}" for byte in b"\x0e\x6b" + octets)
        data = {"VNI": config.vni, "VtepMAC": mac}
    attrs = {
        "PublicIP": public_ip,
        "PublicIPv6": None,
        "BackendType": config.backend_type,
        "BackendData": data,
    }
    return json.dumps(attrs, separators=(",", ":"))


def subnet_from_key(key: str) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(key.rsplit("/", 1)[-1].replace("-", "/"))
    except ValueError:
        return None  # flannel ignores bad subnet nodes


def own_lease(leases: dict[str, bytes], public_ip: str, network) -> str | None:
    for key, value in leases.items():
        subnet = subnet_from_key(key)
        try:
            owner = json.loads(value).get("PublicIP")
        except (ValueError, AttributeError):
            continue
        if owner == public_ip and subnet is not None and subnet.subnet_of(network):
            return key
    return None


def first_free_subnet(config: NetworkConfig, leases: dict[str, bytes]):
    taken = [subnet for subnet in map(subnet_from_key, leases) if subnet is not None]
    size = 2 ** (32 - config.subnet_len)
    for address in range(int(config.subnet_min), int(config.subnet_max) + 1, size):
        candidate = ipaddress.IPv4Network((address, config.subnet_len))
        if not any(candidate.overlaps(subnet) for subnet in taken):
            return candidate
    raise NotYet(f"out of subnets in {config.network}")


def acquire_lease(etcd: EtcdV3, prefix: str, config: NetworkConfig, public_ip: str):
    """Reuse the lease of this public IP, else create one on the first free subnet."""
    subnets = posixpath.join(prefix, "subnets") + "/"
    attrs = lease_attrs(config, public_ip)

    def attempt() -> ipaddress.IPv4Network:
        leases = etcd.get_prefix(subnets)
        key = own_lease(leases, public_ip, config.network)
        if key:
            etcd.put(key, attrs)
            return subnet_from_key(key)
        subnet = first_free_subnet(config, leases)
        key = subnets + f"{subnet.network_address}-{subnet.prefixlen}"
        if not etcd.create(key, attrs):
            raise NotYet(f"{key} was taken meanwhile")
        return subnet

    subnet = retry("failed to acquire a subnet lease", attempt, 30)
    log(f"Acquired lease: {subnet} for {public_ip}")
    return subnet


def write_subnet_file(path: str, config: NetworkConfig, subnet, ip_masq: str) -> None:
    mtu = BACKEND_MTU.get(config.backend_type, 1500)
    lines = [
        f"FLANNEL_NETWORK={config.network}",
        f"FLANNEL_SUBNET={subnet.network_address + 1}/{subnet.prefixlen}",
        f"FLANNEL_MTU={mtu}",
        f"FLANNEL_IPMASQ={ip_masq}",
    ]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name("." + target.name)  # renamed into place, as flannel does
    temporary.write_text("\n".join(lines) + "\n")
    temporary.replace(target)
    log(f"Wrote subnet file to {path}")


def check_flanneld_flags(flags: Flags) -> None:
    margin = to_int(flags.get("subnet-lease-renew-margin", "60"), "-subnet-lease-renew-margin")
    if not 0 < margin < 24 * 60:
        raise Fatal("Invalid subnet-lease-renew-margin option, out of acceptable range")
    if flags.get("kube-subnet-mgr") == "true":
        raise Fatal(
            "the kubelab stand-in implements only the etcd subnet manager, not -kube-subnet-mgr"
        )
    check_file_flags(flags, FLANNELD_FILE_FLAGS.__contains__, "-")


def run_flanneld(name: str, version: str, flag_data: tuple, args: list[str]) -> int:
    accepted, env_names = flag_data
    flags = parse_go_args(args, accepted)
    if flags.get("version") == "true":
        finish_version(f"{version} (kubelab stand-in)", sys.stderr)
    apply_env(flags, env_names)
    check_flanneld_flags(flags)
    context = tls_client(*(flags.get(flag) for flag in FLANNELD_FILE_FLAGS))
    endpoints = flags.get("etcd-endpoints", "http://127.0.0.1:4001,http://127.0.0.1:2379")
    etcd = EtcdV3(endpoints.split(","), context)
    healthz_port = to_port(flags.get("healthz-port", "0"), "-healthz-port")
    if healthz_port:
        serve(name, flags.get("healthz-ip", "0.0.0.0"), healthz_port)
    prefix = flags.get("etcd-prefix", "/coreos.com/network")
    config = fetch_network_config(etcd, prefix)
    if config.backend_type not in FLANNEL_BACKENDS:
        raise Fatal(f"Error fetching backend: unknown backend type: {config.backend_type}")
    if not os.path.exists(BR_NETFILTER):
        raise Fatal(f"Failed to check br_netfilter: stat {BR_NETFILTER}: no such file or directory")
    subnet = acquire_lease(etcd, prefix, config, find_public_ip(flags))
    subnet_file = flags.get("subnet-file", "/run/flannel/subnet.env")
    write_subnet_file(subnet_file, config, subnet, flags.get("ip-masq", "false"))
    return run_forever()


def run_cni_plugin(version: str) -> int:
    """A CNI plugin that only answers VERSION (CNI spec: result or error JSON on stdout)."""
    command = os.environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        print(json.dumps({"cniVersion": CNI_SPEC_VERSION, "supportedVersions": CNI_VERSIONS}))
        return 0
    error = {
        "cniVersion": CNI_SPEC_VERSION,
        "code": 100,
        "msg": f"kubelab lab stand-in for flannel CNI plugin {version}: not the real binary",
        "details": f"CNI_COMMAND {command!r} is not implemented; only VERSION is",
    }
    print(json.dumps(error))
    return 1


# --- entry point -----------------------------------------------------------------------------


def on_signal(signum, _frame) -> None:
    log(f"received {signal.Signals(signum).name}, exiting")
    raise SystemExit(0)


def main(name: str, version: str, accepted: frozenset, env_names: dict) -> int:
    log(f"kubelab lab stand-in for {name} {version}: not the real binary")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if name == "kubectl":
            return run_kubectl(version, sys.argv[1:])
        if name == "flannel-amd64":
            return run_cni_plugin(version)
        if name == "flanneld":
            return run_flanneld(name, version, (accepted, env_names), sys.argv[1:])
        return run_kube_daemon(name, version, accepted, sys.argv[1:])
    except Fatal as error:
        log(f"Error: {error}")
        return 1
