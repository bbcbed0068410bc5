"""Bounded time: every remote command that waits on the network or on a service ends.

Each such operation has a bound: the program's own (apt's and yum's timeouts, curl's, etcdctl's)
and, for the package managers, pyinfra's ``_timeout`` too. Past it the host fails with one line
naming the host, the operation and what it waited on: the command prints it (curl's URL,
etcd's endpoint), or, for apt and yum, whose output kubelab does not control, ``Report`` does
(the package sources), after the package manager's own error lines.
"""

import shlex

from pyinfra import host, logger
from pyinfra.api.state import BaseStateCallback

from ..components import catalog
from ..settings import topology
from ..settings.defaults import setting
from ..settings.profiles import family
from . import once, shell
from .facts import PackageSources

CURL_RETRIES = 3
PACKAGE_RETRIES = 2  # apt's Acquire::Retries, yum's retries
SPEED_LIMIT = 1024  # bytes per second: slower for network_timeout seconds is a stall
APT_CONFIG = catalog.APT_CONFIG  # apt's bounds, placed by prerequisites
ETCD_DIAL_TIMEOUT = 5  # seconds etcdctl may take to reach etcd (on the master's network)
ETCD_COMMAND_TIMEOUT = 10  # seconds etcd may take to answer one request
NEEDS_ETCD = catalog.NEEDS_ETCD  # they tell systemd they started once etcd answers


def network_timeout(target=None) -> int:
    return setting("network_timeout", target)


def operation_timeout(target=None) -> int:
    return setting("operation_timeout", target)


def curl() -> str:
    """curl bounded in every way: connecting, stalling, the whole download (retries too)."""
    wait, total = network_timeout(), operation_timeout()
    return (
        f"curl -fsSL --connect-timeout {wait} --speed-limit {SPEED_LIMIT} --speed-time {wait} "
        f"--max-time {total} --retry {CURL_RETRIES} --retry-max-time {total}"
    )


def fetch(url: str, path: str, label: str) -> str:
    """Shell: ``url`` fetched to ``path`` by ``curl()``; on failure nothing stays and one line
    names the host, the operation (``label``), the URL, curl's error and the bounds."""
    failed = shell.or_fail(
        f"kubelab: {host.name}: {label}: {url}: ",
        shell.last_line("err"),
        shlex.quote(f" ({curl_bound()})"),
        first=f"rm -f {path}; ",
    )
    return f"err=$({curl()} -o {path} {shlex.quote(url)} 2>&1) || {failed}"


def etcdctl_options(api: int) -> str:
    """etcdctl's own bounds on connecting and on answering (v2 and v3 name them differently)."""
    if api == 2:
        return f"--timeout={ETCD_DIAL_TIMEOUT}s --total-timeout={ETCD_COMMAND_TIMEOUT}s"
    return f"--dial-timeout={ETCD_DIAL_TIMEOUT}s --command-timeout={ETCD_COMMAND_TIMEOUT}s"


def ctr(namespace: str) -> str:
    """ctr bounded on reaching containerd and on the whole command."""
    return (
        f"ctr --namespace {namespace} --connect-timeout {network_timeout()}s "
        f"--timeout {operation_timeout()}s"
    )


def service_start(name: str) -> str:
    """What ``systemctl start`` or ``restart`` of ``name`` waits on, and its bound."""
    needs = f", which needs etcd at {topology.etcd_url()}" if name in NEEDS_ETCD else ""
    return f"{name} to start{needs} (systemd's start timeout, 90 s unless its unit sets one)"


def curl_bound() -> str:
    return (
        f"curl: {network_timeout()} s to connect or without data, {operation_timeout()} s in "
        f"all, {CURL_RETRIES} retries"
    )


def yum_options() -> str:
    """yum's (and dnf's) own bound on each connection, and fewer retries than its 10."""
    return f"--setopt=timeout={network_timeout()} --setopt=retries={PACKAGE_RETRIES}"


def package_sources_text() -> str:
    sources = once.fact(PackageSources)
    tool = "apt" if family() == "debian" else "yum"
    where = "/etc/apt" if tool == "apt" else "/etc/yum.repos.d"
    listed = ", ".join(sources) if sources else f"(none found in {where})"
    return (
        f"the package sources {listed} ({tool}: {network_timeout()} s to connect or without "
        f"data, {PACKAGE_RETRIES} retries; the operation at most {operation_timeout()} s)"
    )


class Report(BaseStateCallback):
    """Prints the one line of a failed operation that waits on something."""

    def __init__(self):
        self.waits = {}  # (host name, operation hash) -> (the operation's name, what it waits on)

    def operation_host_error(self, state, host, op_hash, retry_attempt=0, max_retries=0):
        if (host.name, op_hash) in self.waits:
            name, what = self.waits[(host.name, op_hash)]
            logger.error(f"kubelab: {host.name}: '{name}' failed, waiting on {what}")


def waits_on(operation, name: str, what: str):
    """Remember that ``operation`` (called ``name``) waits on ``what`` on the current host."""
    reports = once.run_cache("reports")
    if "report" not in reports:
        reports["report"] = Report()
        once.current_state().add_callback_handler(reports["report"])
    report = reports["report"]
    op_hash = getattr(operation, "_hash", None)
    if op_hash is not None:
        deploy = host.current_deploy_name
        report.waits[(host.name, op_hash)] = (f"{deploy} | {name}" if deploy else name, what)
    return operation


def waits_on_packages(operation, name: str):
    return waits_on(operation, name, package_sources_text())
