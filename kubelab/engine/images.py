"""Image archives for air-gapped sites (``image_archives``), imported into containerd.

Each entry maps an image reference to an archive (``ctr images export`` or ``docker save``
output): a file on the machine running pyinfra, uploaded, or an http(s) URL, fetched by the
minion. An image containerd already holds in the CRI's namespace is never imported again.
"""

import hashlib
import re
import shlex
from pathlib import Path

from pyinfra import host
from pyinfra.api import FileUploadCommand, deploy, operation

from ..settings.defaults import DEFAULTS, setting
from . import bounds, hoststate, once, shell
from .facts import ContainerdImages

NAMESPACE = "k8s.io"  # the CRI plugin's, where the kubelet looks
STAGING = "/var/lib/kubelab/images"
IMPORT = "images import --platform linux/amd64 --label io.cri-containerd.pinned=pinned"
# [domain[:port]/]path[:tag][@digest], lower case names as containerd requires
COMPONENT = r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
REFERENCE = re.compile(
    rf"{COMPONENT}(?::\d+)?(?:/{COMPONENT})*(?::\w[\w.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?"
)


def is_url(archive: str) -> bool:
    return archive.startswith(("http://", "https://"))


def local_path(archive: str) -> Path:
    """A local archive's path (``~`` expanded; relative to where pyinfra runs)."""
    return Path(archive).expanduser()


def normalized(reference: str) -> str:
    """``reference`` as containerd lists it: Docker Hub's domain and ``library/`` spelt out,
    ``:latest`` where it names no tag or digest."""
    name, at, digest = reference.partition("@")
    first, _, rest = name.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}"
    if name.startswith("docker.io/") and name.count("/") == 1:
        name = "docker.io/library/" + name.removeprefix("docker.io/")
    if not at and ":" not in name.rsplit("/", 1)[1]:
        name += ":latest"
    return name + at + digest


@operation()
def images(archives: dict[str, str]):
    """containerd holds each image of ``archives`` (reference -> archive), imported (pinned)
    from its archive if it did not."""
    # Read once per host and run (with the rest of what this host is asked: hoststate).
    held = once.fact(ContainerdImages, namespace=NAMESPACE)
    for reference, archive in archives.items():
        wanted = normalized(reference)
        if wanted in held:
            host.noop(f"containerd holds {wanted}")
        else:
            yield from imported(reference, archive, wanted)


def imported(reference: str, archive: str, wanted: str):
    """The commands importing ``archive`` into containerd, which then holds ``wanted``."""
    temp = f"{STAGING}/{hashlib.sha256(wanted.encode()).hexdigest()[:16]}.tar"
    yield f"mkdir -p {STAGING}"
    if is_url(archive):
        yield bounds.fetch(archive, temp, f"Import {reference} into containerd")
    else:
        yield FileUploadCommand(str(local_path(archive)), temp, remote_temp_filename=temp + ".part")
    ctr = bounds.ctr(NAMESPACE)
    check = f"{ctr} images ls -q | grep -qxF {shlex.quote(wanted)}"
    problem = (
        f"kubelab: {host.name}: Import {reference} into containerd: {archive} holds no image "
        f"{wanted}, or containerd did not import it (within {bounds.operation_timeout()} s)"
    )
    yield (
        f"{ctr} {IMPORT} {temp}; imported=$?; rm -f {temp}; "
        f"[ $imported = 0 ] && {check} || {shell.or_fail(problem)}"
    )


@deploy("Image archives", data_defaults=DEFAULTS)
def deploy_image_archives():
    """Every image of ``image_archives`` in containerd (which must be running), in one
    operation."""
    archives = {}
    for reference, archive in sorted(setting("image_archives").items()):
        if normalized(reference) not in map(normalized, archives):  # two spellings: once
            archives[reference] = archive
    if archives:
        hoststate.will_ask(ContainerdImages, namespace=NAMESPACE)
        images(name=f"Import {', '.join(archives)} into containerd", archives=archives)
