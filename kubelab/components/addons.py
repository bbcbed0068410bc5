"""The add-ons (modern profile), applied from the master with kubectl: cluster DNS, and
metrics-server behind the aggregation layer.

Each add-on is one manifest under /etc/kubernetes/addons. The file on the master is the
manifest last applied: a changed manifest goes beside it, is applied (tried again until the
apiserver accepts it, at most ``addons_timeout`` seconds), its Deployment is waited on until
every replica runs the new pod template and is available (at most ``addons_timeout`` seconds
more), and only then the manifest takes its place. So a run ends with cluster DNS answering, a
re-run whose manifests are the same sends nothing to the API, and a run that failed to apply
one, or whose pods never became available, applies it and waits again next time.
An add-on turned off is deleted from the cluster with its manifest.
"""

from io import BytesIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, deploy
from pyinfra.operations import server

from .. import engine
from ..engine import shell
from ..engine.clients import kubectl
from ..engine.images import deploy_image_archives
from ..settings import topology
from ..settings.defaults import DEFAULTS, setting
from . import coredns, metrics_server

ADDONS = "/etc/kubernetes/addons"
INTERVAL = 2  # seconds between two tries


def pending(path: str) -> str:
    return f"{path}.pending"


def retried(command: str, what: str) -> str:
    """Shell: ``command`` tried every INTERVAL seconds until it succeeds, at most
    ``addons_timeout`` seconds; then one line naming ``what`` and kubectl's last words."""
    seconds = setting("addons_timeout")
    problem = f"kubelab: {host.name}: {what} (tried for {seconds} s: addons_timeout): "
    return shell.until_deadline(command, seconds, INTERVAL, problem)


def rolled_out(deployment: str, selector: str) -> str:
    """Shell: succeeds when kube-system's ``deployment`` has seen its last change and each
    of its replicas (no old one left) is updated and available; otherwise prints its pods."""
    fields = (
        "{.metadata.generation} {.status.observedGeneration} {.spec.replicas} "
        "{.status.updatedReplicas} {.status.availableReplicas} {.status.replicas}"
    )
    system = f"{kubectl()} -n kube-system"
    return (
        f"{{ s=$({system} get deployment {deployment} -o 'jsonpath={fields}') && set -- $s && "
        '[ "$1" = "$2" ] && [ "$3" = "$4" ] && [ "$3" = "$5" ] && [ "$3" = "$6" ] || '
        f"{{ echo \"pods $({system} get pods -l {selector} --no-headers | tr -s ' \\n' ' ;')\"; "
        "false; }; }"
    )


def apply_command(path: str, deployment: str, selector: str) -> str:
    """Shell: the manifest waiting beside ``path`` applied, its Deployment rolled out, then
    the manifest moved into place."""
    command = f"{kubectl()} apply -f {pending(path)}"
    rollout = rolled_out(deployment, selector)
    return (
        f"{retried(command, f'kubectl apply -f {path}')} && "
        f"{retried(rollout, f'waiting for deployment {deployment} to be available')} && "
        f"mv -f {pending(path)} {path}"
    )


def applied(addon, label: str) -> engine.Step:
    """The step applying ``addon``'s manifest (its module: ``MANIFEST``, ``manifest()``,
    ``DEPLOYMENT``, ``POD_SELECTOR``) kept on the master, when the file there differs, and
    waiting for its Deployment."""
    path, content = addon.MANIFEST, addon.manifest()
    engine.manage(path)

    def commands():
        # A manifest may hold a key (metrics-server's): a directory only root enters, no diff.
        yield f"install -d -m 700 {ADDONS}"
        temp = pending(path)
        yield FileUploadCommand(
            BytesIO(content.encode()), temp, remote_temp_filename=f"{temp}.part"
        )
        yield f"chmod 600 {temp}"
        yield apply_command(path, addon.DEPLOYMENT, addon.POD_SELECTOR)

    return engine.add_step(label, path, lambda: engine.differs(path, content.encode()), commands)


def deleted(path: str, label: str) -> engine.Step:
    """The step deleting what the manifest at ``path`` created, and the manifest, if it is
    there."""
    # kubectl delete waits for the objects to go, unbounded unless told
    command = (
        f"{kubectl()} delete --ignore-not-found --timeout={setting('addons_timeout')}s -f {path}"
    )

    def commands():
        yield f"{retried(command, f'kubectl delete -f {path}')} && rm -f {path}"

    return engine.add_step(label, path, lambda: engine.exists(path), commands)


@deploy("Add-ons", data_defaults=DEFAULTS)
def deploy_addons():
    """On the master: CoreDNS, and metrics-server (``metrics_server``)."""
    applied(coredns, "Apply CoreDNS (cluster DNS)")
    if setting("metrics_server"):
        applied(metrics_server, "Apply metrics-server")
    else:
        deleted(metrics_server.MANIFEST, "Delete metrics-server (metrics_server is off)")


def named_ahead():
    """The master's manifests named before a deploy first reads the master's state, so that
    one read answers for them too."""
    if topology.is_first_master():
        for path in (coredns.MANIFEST, metrics_server.MANIFEST):
            engine.manage(path)


@deploy("Add-ons at the upgraded releases", data_defaults=DEFAULTS)
def deploy_upgraded_addons():
    """After an upgrade's last minion: every minion holds the images ``image_archives`` names
    (the add-ons' new ones among them), then the master applies the add-ons whose manifests
    changed (a new ``dns_image`` or ``metrics_server_image``: CoreDNS rolls one replica at a
    time)."""
    if topology.is_minion():
        deploy_image_archives()
    server.shell(name="The minions hold the add-ons' images", commands=[])
    if topology.is_first_master():
        deploy_addons()
