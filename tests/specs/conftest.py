"""testinfra specs of a kubelab cluster: hosts, roles and expected values from the inventory.

The inventory and group_data/ are loaded with pyinfra's own loader, so the specs check exactly
the cluster the deploy built. Collecting the tests never connects to a host; every test that
needs an unreachable host fails.
"""

import ipaddress
import os
import shlex
import stat
import time
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import pytest
import testinfra
from pyinfra.api import State
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory

from kubelab.settings import topology
from kubelab.settings.defaults import secure_for, setting
from kubelab.settings.profiles import PROFILES, SUPPORTED

REPO = Path(__file__).resolve().parents[2]
ROLE_FIXTURES = {"node": "all", "master": topology.MASTERS_GROUP, "minion": topology.MINIONS_GROUP}
ALL_ADDRESSES = {"0.0.0.0", "::", "*"}
FLANNEL_SUBNET_FILE = "/run/flannel/subnet.env"
KUBECTL = "/usr/local/bin/kubectl"  # modern; el7's package puts kubectl on the PATH
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.kubeconfig"
# The lab rebuilds its machines with new host keys; pyinfra's lab data turns checking off too.
SSH_CONFIG = "Host *\n    StrictHostKeyChecking no\n"
_CLUSTER = pytest.StashKey()


def pytest_addoption(parser):
    parser.addoption(
        "--inventory",
        default=None,
        help="pyinfra inventory of the cluster (default: $KUBELAB_INVENTORY, else "
        "inventory.py at the repo root); group_data/ of the repo applies as in the deploy",
    )


class Stat(NamedTuple):
    mode: int
    user: str
    group: str
    kind: str

    def __str__(self):
        return f"{self.kind} {self.mode:04o} {self.user}:{self.group}"


class Node:
    """One inventory host: its data, and a testinfra host reached over SSH on first use."""

    def __init__(self, inventory_host, cluster):
        self.inventory_host = inventory_host
        self.cluster = cluster
        self.name = inventory_host.name
        self._unreachable = None

    def __repr__(self):
        return f"<Node {self.name}>"

    def setting(self, name):
        return setting(name, self.inventory_host)

    @property
    def address(self):
        return topology.address(self.inventory_host)

    @property
    def short_name(self):
        return topology.short_name(self.inventory_host)

    @property
    def ssh_target(self):
        data = self.inventory_host.data
        user = data.get("ssh_user")
        hostname = data.get("ssh_hostname") or self.name
        port = data.get("ssh_port") or 22
        return f"{user + '@' if user else ''}{hostname}:{port}"

    @cached_property
    def _testinfra_host(self):
        options = {"ssh_config": str(self.cluster.ssh_config)}
        key = self.inventory_host.data.get("ssh_key")
        if key:
            options["ssh_identity_file"] = os.path.expanduser(key)
        if self.inventory_host.data.get("_sudo"):
            options["sudo"] = True
        return testinfra.get_host(f"paramiko://{self.ssh_target}", **options)

    @property
    def host(self):
        return self.reach()

    def reach(self):
        """The testinfra host; fails the calling test when the host cannot be reached."""
        __tracebackhide__ = True
        if self._unreachable is None:
            try:
                self._testinfra_host.run("true")
                self._unreachable = ""
            except Exception as error:  # paramiko, socket and DNS errors alike
                self._unreachable = f"{type(error).__name__}: {error}"
        if self._unreachable:
            pytest.fail(
                f"{self.name}: cannot reach {self.ssh_target} over SSH ({self._unreachable})",
                pytrace=False,
            )
        return self._testinfra_host

    def run(self, *argv):
        return self.host.run(shlex.join(argv))

    def read(self, path):
        """The file's text, or None when it cannot be read."""
        result = self.run("cat", path)
        return result.stdout if result.rc == 0 else None

    @cached_property
    def os_release(self):
        text = self.read("/etc/os-release")
        assert text is not None, f"{self.name}: expected /etc/os-release, found none"
        return parse_env(text)

    @cached_property
    def distribution(self):
        release = self.os_release
        return release.get("ID", "").lower(), int(release.get("VERSION_ID", "0").split(".")[0])

    @cached_property
    def profile(self):
        """KUBELAB_PROFILE, else the profile the data pins, else the one the OS calls for."""
        self.reach()  # a pinned profile must not spare an unreachable host its failure
        pinned = os.environ.get("KUBELAB_PROFILE") or self.setting("profile")
        if pinned:
            if pinned not in PROFILES:
                pytest.fail(f"{self.name}: profile {pinned!r} is not one of {PROFILES}")
            return pinned
        os_id, major = self.distribution
        if (os_id, major) not in SUPPORTED:
            pytest.fail(f"{self.name}: kubelab supports no {os_id} {major}", pytrace=False)
        return SUPPORTED[(os_id, major)]

    @property
    def debian_family(self):
        return self.distribution[0] in ("debian", "ubuntu")

    def only(self, profile, what):
        if self.profile != profile:
            pytest.skip(f"{self.name} runs the {self.profile} profile: it has no {what}")

    def unit(self, name):
        """``systemctl is-active`` and ``is-enabled`` of a unit ('' when it does not exist)."""
        __tracebackhide__ = True
        result = self.run("systemctl", "is-active", name)
        if not result.stdout.strip():
            pytest.fail(f"{self.name}: systemctl gives no state of {name}: {result.stderr.strip()}")
        enabled = self.run("systemctl", "is-enabled", name).stdout.strip()
        return result.stdout.strip(), enabled

    def assert_running(self, unit):
        __tracebackhide__ = True
        active, enabled = self.unit(unit)
        assert (active, enabled) == ("active", "enabled"), (
            f"{self.name}: expected {unit} active and enabled, found "
            f"is-active={active or 'none'}, is-enabled={enabled or 'none'}"
        )

    def listening(self, port):
        """Local addresses with a TCP socket listening on ``port``."""
        addresses = set()
        for socket in self.host.socket.get_listening_sockets():
            protocol, _, rest = socket.partition("://")
            address, _, found = rest.rpartition(":")
            if protocol == "tcp" and found == str(port):
                addresses.add(address.split("%")[0])
        return addresses

    def assert_listening(self, what, port, on):
        """``on``: 'all' addresses, 'any' address, 'loopback' only, or one address."""
        __tracebackhide__ = True
        addresses = self.listening(port)
        if on == "loopback":
            ok = bool(addresses) and all(is_loopback(address) for address in addresses)
            wanted = "on loopback addresses only"
        elif on == "any":
            ok, wanted = bool(addresses), "on some address"
        elif on == "all":
            ok, wanted = bool(addresses & ALL_ADDRESSES), "on all addresses"
        else:
            ok = bool(addresses & ALL_ADDRESSES) or on in addresses
            wanted = f"on {on} (or all addresses)"
        found = ", ".join(sorted(addresses)) or "nothing"
        assert ok, f"{self.name}: expected {what} listening on TCP {port} {wanted}, found {found}"

    def env_file(self, path):
        """The variables an environment file sets, or None when it is missing."""
        text = self.read(path)
        return None if text is None else parse_env(text)

    def flannel_subnet(self):
        """This host's flannel lease (FLANNEL_SUBNET of /run/flannel/subnet.env)."""
        __tracebackhide__ = True
        lease = self.env_file(FLANNEL_SUBNET_FILE)
        assert lease is not None, f"{self.name}: expected {FLANNEL_SUBNET_FILE}, found none"
        assert "FLANNEL_SUBNET" in lease, (
            f"{self.name}: expected FLANNEL_SUBNET in {FLANNEL_SUBNET_FILE}, found {lease}"
        )
        return ipaddress.ip_interface(lease["FLANNEL_SUBNET"])

    def stat(self, *paths, follow=False):
        """path -> Stat, or None for a missing path."""
        argv = ["stat", *(["-L"] if follow else []), "-c", "%f|%U|%G|%n", "--", *paths]
        found = {path: None for path in paths}
        for line in self.run(*argv).stdout.splitlines():
            raw, user, group, path = line.split("|", 3)
            mode = int(raw, 16)
            kind = {stat.S_IFREG: "file", stat.S_IFDIR: "directory"}.get(stat.S_IFMT(mode), "other")
            found[path] = Stat(stat.S_IMODE(mode), user, group, kind)
        return found

    def assert_executable(self, paths):
        __tracebackhide__ = True
        wrong = {
            path: str(found) if found else "missing"
            for path, found in self.stat(*paths, follow=True).items()
            if not found or found.kind != "file" or not found.mode & 0o111
        }
        assert not wrong, f"{self.name}: expected executable files, found {wrong}"

    def assert_owned(self, wanted):
        """``wanted``: path -> (mode, user, group)."""
        __tracebackhide__ = True
        found = self.stat(*sorted(wanted))
        wrong = {
            path: str(found[path]) if found[path] else "missing"
            for path, owner in wanted.items()
            if not found[path] or found[path][:3] != owner
        }
        expected = {
            path: f"{mode:04o} {user}:{group}" for path, (mode, user, group) in wanted.items()
        }
        assert not wrong, f"{self.name}: expected {expected}; wrong: {wrong}"

    def kubectl(self, *argv):
        """kubectl on this host (the master) with the cluster's admin credentials."""
        if self.profile == "el7":
            prefix = [
                "kubectl",
                "-s",
                f"http://127.0.0.1:{self.setting('apiserver_insecure_port')}",
            ]
        else:
            prefix = [KUBECTL, "--kubeconfig", ADMIN_KUBECONFIG, "--request-timeout=20s"]
        return self.run(*prefix, *argv)

    def http_get(self, url, *curl_options):
        """(HTTP status, body) of GET ``url`` from this host; status '000' when nothing answers
        (the body then holds curl's error)."""
        result = self.run(
            "curl", "-sS", "--max-time", "5", *curl_options, "-w", "\n%{http_code}", url
        )
        body, _, code = result.stdout.rpartition("\n")
        if result.rc != 0:
            return "000", (body + result.stderr).strip()
        return code.strip(), body.strip()

    @staticmethod
    def until(seconds, attempt, done, pause=2):
        """``attempt()`` until ``done(result)`` or ``seconds`` have passed (at least once);
        the last result."""
        deadline = time.monotonic() + seconds
        while True:
            result = attempt()
            if done(result) or time.monotonic() >= deadline:
                return result
            time.sleep(pause)

    def assert_healthy(self, what, url, *curl_options, body="ok", within=0):
        """GET ``url`` answers 200 (and ``body``, unless None), at once or, for a service that
        may still be starting, within ``within`` seconds."""
        __tracebackhide__ = True

        def answered(result):
            code, found = result
            return code == "200" and (body is None or found == body)

        code, found = self.until(within, lambda: self.http_get(url, *curl_options), answered)
        ok = answered((code, found))
        wanted = "HTTP 200" + (f" {body!r}" if body is not None else "")
        waited = f" within {within} s" if within else ""
        assert ok, (
            f"{self.name}: expected {what} {url} to answer {wanted}{waited}, found {code} {found!r}"
        )

    def assert_verifies(self, cert, ca):
        __tracebackhide__ = True
        result = self.run("openssl", "verify", "-CAfile", ca, cert)
        assert result.rc == 0, (
            f"{self.name}: expected {cert} to verify against {ca}, found "
            f"{(result.stdout + result.stderr).strip()!r}"
        )

    def find(self, directory, *patterns):
        names = []
        for pattern in patterns:
            names += ["-o", "-name", pattern] if names else ["-name", pattern]
        result = self.run("find", directory, "-maxdepth", "2", "(", *names, ")")
        return sorted(result.stdout.split())


class Cluster:
    def __init__(self, inventory_path, inventory):
        self.inventory_path = inventory_path
        self.nodes = {target.name: Node(target, self) for target in inventory}
        self.masters = [self.nodes[t.name] for t in inventory.get_group(topology.MASTERS_GROUP, [])]
        self.minions = [self.nodes[t.name] for t in inventory.get_group(topology.MINIONS_GROUP, [])]
        self.ssh_config = None

    @property
    def master(self):
        return self.masters[0]

    def role(self, group):
        if group == "all":
            return list(self.nodes.values())
        return self.masters if group == topology.MASTERS_GROUP else self.minions

    def member_url(self, master):
        """The client URL of ``master``'s etcd member."""
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{master.address}:{master.setting('etcd_client_port')}"

    @property
    def etcd_url(self):
        """Every member's client URL, as etcd's clients are given them."""
        return ",".join(self.member_url(master) for master in self.masters)

    @property
    def highly_available(self):
        return len(self.masters) > 1

    @property
    def secure(self):
        """``secure`` as the deploy applies it: unset, on for modern and off for el7."""
        return secure_for(self.master.setting("secure"), self.master.profile)


def parse_env(text):
    """The variables of a shell/systemd environment file."""
    variables = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        variables[name.strip()] = " ".join(shlex.split(value, comments=True))
    return variables


def is_loopback(address):
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def inventory_path(config):
    value = config.getoption("--inventory") or os.environ.get("KUBELAB_INVENTORY")
    return Path(value).resolve() if value else REPO / "inventory.py"


def load_cluster(config):
    if _CLUSTER in config.stash:
        return config.stash[_CLUSTER]
    path = inventory_path(config)
    if not path.is_file():
        raise pytest.UsageError(f"kubelab specs: inventory {path} does not exist")
    profile = os.environ.get("KUBELAB_PROFILE")
    if profile and profile not in PROFILES:
        raise pytest.UsageError(
            f"kubelab specs: KUBELAB_PROFILE={profile!r} is not one of {', '.join(PROFILES)}"
        )
    state = State(check_for_changes=False)
    with ctx_state.use(state):
        inventory = make_inventory(
            str(path),
            override_data={},
            cwd=str(REPO),
            group_data_directories=[str(REPO / "group_data")],
        )
    cluster = Cluster(path, inventory)
    if len(cluster.masters) % 2 != 1 or not cluster.minions:
        raise pytest.UsageError(
            f"kubelab specs: {path} must have an odd count of hosts in 'masters' and at least "
            f"one in 'minions'; found {len(cluster.masters)} and {len(cluster.minions)}"
        )
    config.stash[_CLUSTER] = cluster
    return cluster


def pytest_configure(config):
    load_cluster(config)


def pytest_report_header(config):
    cluster = load_cluster(config)
    masters = ", ".join(node.name for node in cluster.masters)
    minions = ", ".join(node.name for node in cluster.minions)
    return f"kubelab inventory {cluster.inventory_path}: masters {masters}; minions {minions}"


def pytest_generate_tests(metafunc):
    cluster = load_cluster(metafunc.config)
    for fixture, group in ROLE_FIXTURES.items():
        if fixture in metafunc.fixturenames:
            names = [node.name for node in cluster.role(group)]
            metafunc.parametrize(fixture, names, ids=names, indirect=True, scope="function")


@pytest.fixture(scope="session")
def cluster(request, tmp_path_factory):
    cluster = load_cluster(request.config)
    if cluster.ssh_config is None:
        cluster.ssh_config = tmp_path_factory.mktemp("ssh") / "config"
        cluster.ssh_config.write_text(SSH_CONFIG)
    return cluster


@pytest.fixture
def node(request, cluster):
    return cluster.nodes[request.param]


@pytest.fixture
def master(request, cluster):
    return cluster.nodes[request.param]


@pytest.fixture
def minion(request, cluster):
    return cluster.nodes[request.param]
