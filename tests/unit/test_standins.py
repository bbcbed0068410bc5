"""The lab's stand-in binaries (tests/lab/standins) and the flag data they embed.

Every stand-in runs as a subprocess and talks only to 127.0.0.1: fake etcd endpoints and the
stand-in apiserver started here.
"""

import base64
import datetime
import http.client
import ipaddress
import json
import os
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.lab.standins import DEFAULT_VERSIONS, build  # noqa: E402

KUBE_DAEMONS = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
]
FLAGS = json.loads((ROOT / "tests" / "data" / "flags.json").read_text())
LISTED = {name: "1.36" if name == "kube-scheduler" else "1.35" for name in KUBE_DAEMONS}
LISTED["flanneld"] = "0.28.9"
BR_NETFILTER = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
NETWORK_CONFIG = {
    "Network": "10.20.0.0/16",
    "SubnetLen": 24,
    "Backend": {"Type": "vxlan", "VNI": 1},
}


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    directory = tmp_path_factory.mktemp("standins")
    return {
        name: build(name, version, directory / name) for name, version in DEFAULT_VERSIONS.items()
    }


def run(program, *args, timeout_setting="1", env=None, limit=15):
    environment = {**os.environ, "KUBELAB_STANDIN_TIMEOUT": timeout_setting, **(env or {})}
    environment.pop("NOTIFY_SOCKET", None)
    return subprocess.run(
        [str(program), *map(str, args)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=limit,
        check=False,
    )


class Daemon:
    """A stand-in started with its own NOTIFY_SOCKET (abstract, as systemd may use)."""

    def __init__(self, program, *args, log_path, env=None):
        self.name = f"kubelab-test-{uuid.uuid4().hex}"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind("\0" + self.name)
        self.log_path = log_path
        environment = {
            **os.environ,
            "KUBELAB_STANDIN_TIMEOUT": "5",
            "NOTIFY_SOCKET": "@" + self.name,
            **(env or {}),
        }
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [str(program), *map(str, args)],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self):
        return Path(self.log_path).read_text()

    def wait_ready(self, limit=10.0):
        self.notify.settimeout(0.2)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                assert self.notify.recv(100) == b"READY=1"
                return self
            except TimeoutError:
                if self.process.poll() is not None:
                    pytest.fail(f"exited {self.process.returncode} before READY:\n{self.log()}")
        pytest.fail(f"no READY=1 within {limit}s:\n{self.log()}")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=5)
        self.notify.close()
        return code


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def https_get(port, path, pki, client=True):
    context = ssl.create_default_context(cafile=pki / "ca.crt")
    if client:
        context.load_cert_chain(pki / "client.crt", pki / "client.key")
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def http_get(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


# --- certificates and kubeconfigs ------------------------------------------------------------


def issue(common_name, key, issuer, issuer_key, *, ca=False, san=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_pair(directory, name, cert, key):
    (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """ca.crt; server.crt/key for 127.0.0.1; client.crt/key; sa.key."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("kubelab-test-ca", ca_key, None, ca_key, ca=True)
    write_pair(directory, "ca", ca, ca_key)
    san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    for name, common_name in (("server", "kubernetes"), ("client", "system:kube-scheduler")):
        key = ec.generate_private_key(ec.SECP256R1())
        write_pair(directory, name, issue(common_name, key, ca.subject, ca_key, san=san), key)
    (directory / "sa.key").write_bytes((directory / "server.key").read_bytes())
    return directory


def kubeconfig(path, server, pki, inline):
    """A kubeconfig like the deploy writes: *-data fields, or paths relative to the file."""

    def field(name, file):
        if inline:
            data = base64.b64encode((pki / file).read_bytes()).decode()
            return f"{name}-data: {data}"
        return f"{name}: {os.path.relpath(pki / file, path.parent)}"

    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- cluster:
    {field("certificate-authority", "ca.crt")}
    server: {server}
  name: kubelab
contexts:
- context:
    cluster: kubelab
    user: tester
  name: default
current-context: default
users:
- name: tester
  user:
    {field("client-certificate", "client.crt")}
    {field("client-key", "client.key")}
""")
    return path


# --- fake etcd: /health and the v3 JSON gateway ----------------------------------------------


class FakeEtcdHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            self.reply({"health": "true", "reason": ""})
        else:
            self.reply({"error": "not found"}, 404)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        method = {"/v3/kv/range": self.range, "/v3/kv/put": self.put, "/v3/kv/txn": self.txn}.get(
            self.path
        )
        if method is None:
            self.reply({"error": "not found"}, 404)
            return
        with self.server.lock:
            self.reply(method(body))

    def reply(self, body, code=200):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

    def range(self, body):
        start = base64.b64decode(body["key"])
        end = base64.b64decode(body["range_end"]) if "range_end" in body else None
        store = self.server.store
        keys = [key for key in sorted(store) if (start <= key < end if end else key == start)]
        kvs = [
            {
                "key": base64.b64encode(key).decode(),
                "value": base64.b64encode(store[key][0]).decode(),
                "create_revision": str(store[key][1]),
            }
            for key in keys
        ]
        return {"header": {}, "kvs": kvs, "count": str(len(kvs))} if kvs else {"header": {}}

    def put(self, body):
        self.server.set(base64.b64decode(body["key"]), base64.b64decode(body["value"]))
        return {"header": {}}

    def txn(self, body):
        for compare in body.get("compare", []):
            assert compare["target"] == "CREATE" and compare.get("result", "EQUAL") == "EQUAL"
            entry = self.server.store.get(base64.b64decode(compare["key"]))
            if (entry[1] if entry else 0) != int(compare.get("create_revision", 0)):
                return {"header": {}}  # proto3 JSON leaves out "succeeded": false
        for operation in body.get("success", []):
            self.put(operation["request_put"])
        return {"header": {}, "succeeded": True}


class FakeEtcd(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), FakeEtcdHandler)
        self.lock, self.store, self.revision = threading.Lock(), {}, 0

    def server_bind(self):
        # Skip HTTPServer's getfqdn() of the bind address: no name lookups in these tests.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def set(self, key: bytes, value: bytes):
        self.revision += 1
        created = self.store[key][1] if key in self.store else self.revision
        self.store[key] = (value, created)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def etcd():
    server = FakeEtcd()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


# --- flag data -------------------------------------------------------------------------------


def test_kube_flag_names_are_normalised():
    for component, versions in FLAGS.items():
        if component.startswith("kube"):
            assert not [flag for flags in versions.values() for flag in flags if "_" in flag]
    assert "log_backtrace_at" in FLAGS["flanneld"]["0.28.9"]
    assert FLAGS["flanneld_env"]["0.28.9"]["etcd-endpoints"] == "FLANNELD_ETCD_ENDPOINTS"


# --- flags -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*KUBE_DAEMONS, "flanneld"])
def test_unknown_flag_exits_1(standins, name):
    result = run(standins[name], "--foo=bar")
    assert result.returncode == 1
    first_line = result.stderr.splitlines()[0]
    assert (
        first_line == f"kubelab lab stand-in for {name} {DEFAULT_VERSIONS[name]}: not the "
        "real binary"
    )
    expected = (
        "flag provided but not defined: -foo" if name == "flanneld" else "unknown flag: --foo"
    )
    assert expected in result.stderr


@pytest.mark.parametrize("name", [*KUBE_DAEMONS, "flanneld"])
def test_every_listed_flag_is_accepted(standins, name):
    dash = "-" if name == "flanneld" else "--"
    listed = [flag for flag in FLAGS[name][LISTED[name]] if flag not in ("help", "version")]
    # "1" is a valid Go bool, int and string; --version exits before any file is read.
    result = run(standins[name], *[f"{dash}{flag}=1" for flag in listed], f"{dash}version")
    assert result.returncode == 0, result.stderr
    assert "unknown flag" not in result.stderr
    assert "kubelab stand-in" in result.stdout + result.stderr


def test_kube_flags_accept_underscores_and_short_v(standins):
    result = run(standins["kube-proxy"], "--log_flush_frequency=5s", "-v", "2", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Kubernetes v1.35.0 (kubelab stand-in)"


def test_removed_flags_of_the_el7_files_are_rejected(standins):
    result = run(standins["kubelet"], "--logtostderr=true", "--api-servers=http://x:8080")
    assert result.returncode == 1
    assert "failed to parse kubelet flag: unknown flag: --logtostderr" in result.stderr
    result = run(standins["kube-apiserver"], "--insecure-bind-address=0.0.0.0")
    assert "unknown flag: --insecure-bind-address" in result.stderr


def test_help_exits_0(standins):
    assert run(standins["kube-scheduler"], "--help").returncode == 0
    assert run(standins["flanneld"], "-help").returncode == 0


# --- files and required flags ----------------------------------------------------------------


def test_missing_file_flag_is_named(standins, tmp_path):
    missing = tmp_path / "missing.kubeconfig"
    result = run(standins["kube-controller-manager"], f"--kubeconfig={missing}")
    assert result.returncode == 1
    assert f"--kubeconfig: open {missing}: no such file or directory" in result.stderr
    result = run(standins["flanneld"], "-etcd-cafile", missing)
    assert result.returncode == 1
    assert f"-etcd-cafile: open {missing}" in result.stderr


def test_apiserver_required_flags(standins, pki):
    result = run(standins["kube-apiserver"], f"--tls-cert-file={pki / 'server.crt'}")
    assert result.returncode == 1
    assert "--etcd-servers must be specified" in result.stderr
    assert "service-account-issuer is a required flag" in result.stderr


def test_config_file_paths_must_exist(standins, tmp_path):
    config = tmp_path / "kubelet-config.yaml"
    config.write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "authentication:\n  x509:\n    clientCAFile: /nonexistent/ca.crt\n"
    )
    result = run(standins["kubelet"], f"--config={config}")
    assert result.returncode == 1
    assert "authentication.x509.clientCAFile: open /nonexistent/ca.crt" in result.stderr
    config.write_text("kind: KubeProxyConfiguration\n")
    result = run(standins["kubelet"], f"--config={config}")
    assert result.returncode == 1
    assert "not KubeletConfiguration" in result.stderr


def test_kubelet_needs_the_runtime_socket(standins, tmp_path):
    endpoint = f"unix://{tmp_path / 'containerd.sock'}"
    result = run(
        standins["kubelet"], f"--container-runtime-endpoint={endpoint}", timeout_setting="0.5"
    )
    assert result.returncode == 1
    assert f"container runtime is not available at {endpoint}" in result.stderr


@pytest.fixture
def cri_socket(tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(tmp_path / "cri.sock"))
        sock.listen(8)
        yield f"unix://{tmp_path / 'cri.sock'}"


def test_unreachable_apiserver_exits_1_in_bounded_time(standins, pki, tmp_path, cri_socket):
    server = f"https://127.0.0.1:{free_port()}"
    config = kubeconfig(tmp_path / "kubelet.kubeconfig", server, pki, inline=False)
    started = time.monotonic()
    result = run(
        standins["kubelet"],
        f"--kubeconfig={config}",
        f"--container-runtime-endpoint={cri_socket}",
        timeout_setting="1",
    )
    assert result.returncode == 1
    assert time.monotonic() - started < 8
    assert f"kube-apiserver {server}" in result.stderr


# --- serving ---------------------------------------------------------------------------------


def apiserver_args(pki, etcd_url, port):
    return [
        f"--etcd-servers={etcd_url}",
        "--service-account-issuer=https://127.0.0.1:6443",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-account-key-file={pki / 'sa.key'}",
        f"--tls-cert-file={pki / 'server.crt'}",
        f"--tls-private-key-file={pki / 'server.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
    ]


@pytest.fixture(scope="module")
def apiserver(standins, pki, tmp_path_factory):
    fake_etcd = FakeEtcd()
    threading.Thread(target=fake_etcd.serve_forever, daemon=True).start()
    port = free_port()
    log = tmp_path_factory.mktemp("apiserver") / "log"
    daemon = Daemon(
        standins["kube-apiserver"], *apiserver_args(pki, fake_etcd.url, port), log_path=log
    ).wait_ready()
    yield port
    daemon.stop()
    fake_etcd.shutdown()


def test_apiserver_serves_health_over_tls(apiserver, pki):
    assert https_get(apiserver, "/healthz", pki) == (200, "ok")
    assert https_get(apiserver, "/readyz", pki, client=False) == (200, "ok")
    status, body = https_get(apiserver, "/api/v1/nodes", pki)
    assert status == 403
    assert "kubelab stand-in kube-apiserver serves only health endpoints" in body


def test_apiserver_needs_etcd(standins, pki):
    dead = f"http://127.0.0.1:{free_port()}"
    result = run(standins["kube-apiserver"], *apiserver_args(pki, dead, free_port()))
    assert result.returncode == 1
    assert f"etcd {dead} did not answer GET /health" in result.stderr


def test_apiserver_reaches_etcd_over_tls_with_client_cert(standins, pki, etcd, tmp_path):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.crt", pki / "server.key")
    context.load_verify_locations(pki / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED
    etcd.socket = context.wrap_socket(etcd.socket, server_side=True)
    etcd_url = etcd.url.replace("http:", "https:")
    args = apiserver_args(pki, etcd_url, free_port())
    result = run(standins["kube-apiserver"], *args, f"--etcd-cafile={pki / 'ca.crt'}")
    assert result.returncode == 1  # no client certificate
    assert f"etcd {etcd_url} did not answer GET /health" in result.stderr
    client = [f"--etcd-certfile={pki / 'client.crt'}", f"--etcd-keyfile={pki / 'client.key'}"]
    daemon = Daemon(
        standins["kube-apiserver"],
        *args,
        f"--etcd-cafile={pki / 'ca.crt'}",
        *client,
        log_path=tmp_path / "log",
    )
    assert daemon.wait_ready().stop() == 0


def test_apiserver_exits_0_on_sigterm(standins, pki, etcd, tmp_path):
    args = apiserver_args(pki, etcd.url, free_port())
    daemon = Daemon(standins["kube-apiserver"], *args, log_path=tmp_path / "log")
    assert daemon.wait_ready().stop() == 0


def test_controller_manager_connects_with_inline_kubeconfig(standins, apiserver, pki, tmp_path):
    config = kubeconfig(
        tmp_path / "kcm.kubeconfig", f"https://127.0.0.1:{apiserver}", pki, inline=True
    )
    port = free_port()
    daemon = Daemon(
        standins["kube-controller-manager"],
        f"--kubeconfig={config}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        log_path=tmp_path / "log",
    ).wait_ready()
    assert http_get(port, "/healthz") == (200, "ok")  # plain HTTP: no --tls-cert-file
    assert daemon.stop() == 0


def test_scheduler_takes_kubeconfig_from_its_config(standins, apiserver, pki, tmp_path):
    config = kubeconfig(
        tmp_path / "scheduler.kubeconfig", f"https://127.0.0.1:{apiserver}", pki, inline=True
    )
    scheduler_config = tmp_path / "kube-scheduler.yaml"
    scheduler_config.write_text(
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
        f'clientConnection:\n  kubeconfig: "{config}"\nleaderElection:\n  leaderElect: true\n'
    )
    port = free_port()
    daemon = Daemon(
        standins["kube-scheduler"],
        f"--config={scheduler_config}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        log_path=tmp_path / "log",
    ).wait_ready()
    assert http_get(port, "/healthz") == (200, "ok")
    assert daemon.stop() == 0


def test_kubelet_serves_tls_from_its_config(standins, apiserver, pki, tmp_path, cri_socket):
    config = kubeconfig(
        pki / "kubelet.kubeconfig", f"https://127.0.0.1:{apiserver}", pki, inline=False
    )
    port = free_port()
    kubelet_config = tmp_path / "kubelet-config.yaml"
    kubelet_config.write_text(f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: {port}
healthzPort: 0
containerRuntimeEndpoint: "{cri_socket}"
tlsCertFile: {pki / "server.crt"}
tlsPrivateKeyFile: {pki / "server.key"}
authentication:
  x509:
    clientCAFile: {pki / "ca.crt"}  # verified when presented
""")
    daemon = Daemon(
        standins["kubelet"],
        f"--kubeconfig={config}",
        f"--config={kubelet_config}",
        log_path=tmp_path / "log",
    ).wait_ready()
    assert https_get(port, "/healthz", pki) == (200, "ok")
    assert daemon.stop() == 0


# --- flanneld --------------------------------------------------------------------------------


@pytest.fixture
def br_netfilter(tmp_path, monkeypatch):
    """The file flanneld checks for br_netfilter: the real one, or a stand-in for this host."""
    if not BR_NETFILTER.exists():
        fake = tmp_path / "bridge-nf-call-iptables"
        fake.write_text("1\n")
        monkeypatch.setenv("KUBELAB_STANDIN_BR_NETFILTER", str(fake))


def test_flanneld_refuses_to_start_without_br_netfilter(standins, etcd, tmp_path):
    etcd.set(b"/coreos.com/network/config", json.dumps(NETWORK_CONFIG).encode())
    missing = tmp_path / "no-such-file"
    result = run(
        standins["flanneld"],
        f"-etcd-endpoints={etcd.url}",
        "-public-ip=10.0.0.11",
        env={"KUBELAB_STANDIN_BR_NETFILTER": str(missing)},
    )
    assert result.returncode == 1
    assert "br_netfilter" in result.stderr


def run_flanneld(standins, etcd, tmp_path, *args, env=None):
    """Start flanneld, wait for READY, stop it; the subnet file's values."""
    subnet_file = tmp_path / "run" / "subnet.env"
    daemon = Daemon(
        standins["flanneld"],
        f"-etcd-endpoints={etcd.url}",
        f"-subnet-file={subnet_file}",
        *args,
        env=env,
        log_path=tmp_path / "flanneld.log",
    ).wait_ready()
    assert daemon.stop() == 0
    return dict(line.split("=", 1) for line in subnet_file.read_text().splitlines())


@pytest.mark.usefixtures("br_netfilter")
def test_flanneld_leases_a_subnet_per_public_ip(standins, etcd, tmp_path):
    etcd.set(b"/coreos.com/network/config", json.dumps(NETWORK_CONFIG).encode())
    first = run_flanneld(standins, etcd, tmp_path, "-public-ip=10.0.0.11", "-ip-masq")
    network = ipaddress.ip_network("10.20.0.0/16")
    subnet = ipaddress.ip_interface(first["FLANNEL_SUBNET"])
    assert first["FLANNEL_NETWORK"] == "10.20.0.0/16"
    assert subnet.network.subnet_of(network) and subnet.network.prefixlen == 24
    assert subnet.network != ipaddress.ip_network("10.20.0.0/24")  # flannel skips the first
    assert subnet.ip == subnet.network.network_address + 1
    assert (first["FLANNEL_MTU"], first["FLANNEL_IPMASQ"]) == ("1450", "true")

    again = run_flanneld(standins, etcd, tmp_path, env={"FLANNELD_PUBLIC_IP": "10.0.0.11"})
    assert again["FLANNEL_SUBNET"] == first["FLANNEL_SUBNET"]
    assert again["FLANNEL_IPMASQ"] == "false"

    other = run_flanneld(standins, etcd, tmp_path, "--public-ip", "10.0.0.12")
    assert other["FLANNEL_SUBNET"] != first["FLANNEL_SUBNET"]

    leases = {
        key.decode(): json.loads(value)
        for key, (value, _) in etcd.store.items()
        if key.startswith(b"/coreos.com/network/subnets/")
    }
    assert sorted(lease["PublicIP"] for lease in leases.values()) == ["10.0.0.11", "10.0.0.12"]
    key = f"/coreos.com/network/subnets/{subnet.network.network_address}-24"
    assert leases[key]["BackendType"] == "vxlan"
    assert leases[key]["BackendData"]["VNI"] == 1


@pytest.mark.usefixtures("br_netfilter")
def test_flanneld_without_network_config_exits_1(standins, etcd):
    result = run(
        standins["flanneld"],
        f"-etcd-endpoints={etcd.url}",
        "-etcd-prefix=/kubelab",
        "-public-ip=10.0.0.11",
        timeout_setting="1",
    )
    assert result.returncode == 1
    assert "Couldn't fetch network config" in result.stderr


# --- kubectl and the CNI plugin --------------------------------------------------------------


def test_kubectl_answers_only_client_version(standins):
    result = run(standins["kubectl"], "version", "--client")
    assert (result.returncode, result.stdout) == (0, "Client Version: v1.35.0 (kubelab stand-in)\n")
    result = run(standins["kubectl"], "get", "nodes")
    assert result.returncode == 1
    assert "stand-in" in result.stderr


def test_flannel_cni_plugin_answers_version_only(standins):
    result = run(standins["flannel-amd64"], env={"CNI_COMMAND": "VERSION"})
    assert result.returncode == 0
    assert "0.3.1" in json.loads(result.stdout)["supportedVersions"]
    result = run(standins["flannel-amd64"], env={"CNI_COMMAND": "ADD"})
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["code"] == 100 and "stand-in" in error["msg"]
