"""The add-ons (modern profile), applied from the master with kubectl: cluster DNS, and
metrics-server behind the aggregation layer.

Each add-on is one manifest under /etc/kubernetes/addons. The file on the master is the
manifest last applied: a changed manifest goes beside it, is applied (tried again until the
apiserver accepts it, at most ``addons_timeout`` seconds), and only then takes its place. So a
re-run whose manifests are the same sends nothing to the API, and a run that failed to apply
one applies it next time. An add-on turned off is deleted from the cluster with its manifest.
"""

import shlex
from io import BytesIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, deploy
from pyinfra.operations import server

from . import coredns, hoststate, metrics_server, placement, topology
from .defaults import DEFAULTS, setting
from .images import deploy_image_archives
from .smoke_test import kubectl

ADDONS = "/etc/kubernetes/addons"
INTERVAL = 2  # seconds between two tries


def pending(path: str) -> str:
    return f"{path}.pending"


def retried(command: str, what: str) -> str:
    """Shell: ``command`` tried every INTERVAL seconds until it succeeds, at most
    ``addons_timeout`` seconds; then one line naming ``what`` and kubectl's last words."""
    seconds = setting("addons_timeout")
    problem = shlex.quote(f"kubelab: {host.name}: {what} (tried for {seconds} s: addons_timeout): ")
    return (
        f"end=$(( $(date +%s) + {seconds} )); until out=$({command} 2>&1); do "
        f'if [ "$(date +%s)" -ge "$end" ]; then echo {problem}"$(printf %s "$out" | '
        f'tail -n 1)" >&2; exit 1; fi; sleep {INTERVAL}; done'
    )


def apply_command(path: str) -> str:
    """Shell: the manifest waiting beside ``path`` applied, then moved into place."""
    command = f"{kubectl()} apply -f {pending(path)}"
    return f"{retried(command, f'kubectl apply -f {path}')} && mv -f {pending(path)} {path}"


def applied(path: str, content: str, label: str) -> placement.Step:
    """The step applying the manifest ``content`` kept at ``path`` on the master, when the
    file there differs."""
    hoststate.manage(path)

    def commands():
        # A manifest may hold a key (metrics-server's): a directory only root enters, no diff.
        yield f"install -d -m 700 {ADDONS}"
        temp = pending(path)
        yield FileUploadCommand(
            BytesIO(content.encode()), temp, remote_temp_filename=f"{temp}.part"
        )
        yield f"chmod 600 {temp}"
        yield apply_command(path)

    return placement.add(label, path, lambda: hoststate.differs(path, content.encode()), commands)


def deleted(path: str, label: str) -> placement.Step:
    """The step deleting what the manifest at ``path`` created, and the manifest, if it is
    there."""
    # kubectl delete waits for the objects to go, unbounded unless told
    command = (
        f"{kubectl()} delete --ignore-not-found --timeout={setting('addons_timeout')}s -f {path}"
    )

    def commands():
        yield f"{retried(command, f'kubectl delete -f {path}')} && rm -f {path}"

    return placement.add(label, path, lambda: hoststate.exists(path), commands)


@deploy("Add-ons", data_defaults=DEFAULTS)
def deploy_addons():
    """On the master: CoreDNS, and metrics-server (``metrics_server``)."""
    applied(coredns.MANIFEST, coredns.manifest(), "Apply CoreDNS (cluster DNS)")
    if setting("metrics_server"):
        applied(metrics_server.MANIFEST, metrics_server.manifest(), "Apply metrics-server")
    else:
        deleted(metrics_server.MANIFEST, "Delete metrics-server (metrics_server is off)")


def named_ahead():
    """The master's manifests named before a deploy first reads the master's state, so that
    one read answers for them too."""
    if topology.is_master():
        for path in (coredns.MANIFEST, metrics_server.MANIFEST):
            hoststate.manage(path)


@deploy("Add-ons at the upgraded releases", data_defaults=DEFAULTS)
def deploy_upgraded_addons():
    """After an upgrade's last minion: every minion holds the images ``image_archives`` names
    (the add-ons' new ones among them), then the master applies the add-ons whose manifests
    changed (a new ``dns_image`` or ``metrics_server_image``: CoreDNS rolls one replica at a
    time)."""
    if topology.is_minion():
        deploy_image_archives()
    server.shell(name="The minions hold the add-ons' images", commands=[])
    if topology.is_master():
        deploy_addons()
