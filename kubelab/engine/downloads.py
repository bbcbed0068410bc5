"""Installing release artifacts: downloaded, checked against their sha256, then installed.

Nothing lands in its final place before its checksum matched, and an installed file whose
checksum already matches is never downloaded again.
"""

import re
import shlex
import urllib.request
from functools import cache

from pyinfra import host
from pyinfra.api import operation

from ..settings.defaults import setting, setting_error
from . import bounds, hoststate, once, placement, shell
from .artifacts import Artifact, checksum_url, download_url, pin_keys
from .facts import ArchiveMarker, kept_digest_command, kept_digests_command


@cache
def _published_sha256(url: str, file_name: str, timeout: int) -> str:
    """The digest upstream publishes at ``url`` for ``file_name``: either the bare hex digest
    (Kubernetes' ``<file>.sha256``) or a ``sha256sum`` listing (etcd's ``SHA256SUMS``).
    ``timeout`` bounds the connection and every read."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read(1 << 20).decode()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 1 or (len(fields) == 2 and fields[1].lstrip("*") == file_name):
            return fields[0].lower()
    raise ValueError(f"no sha256 for {file_name} in {url}")


def expected_sha256(artifact: Artifact) -> str:
    """The pinned digest of ``artifact`` (``artifact_sha256``: ``<name>@<version>``, else
    ``<name>``), else the one published with it."""
    pins = setting("artifact_sha256")
    pinned = next((pins[key] for key in pin_keys(artifact) if pins.get(key)), None)
    if pinned:
        return pinned.lower()
    url = download_url(checksum_url(artifact), setting("artifact_mirror"))
    wait = bounds.network_timeout()
    try:
        digest = _published_sha256(url, artifact.name, wait)
    except (OSError, ValueError) as error:
        timed_out = isinstance(getattr(error, "reason", error), TimeoutError)
        gave = f"did not answer within {wait} s (network_timeout)" if timed_out else f"gave {error}"
        raise setting_error(
            "artifact_sha256",
            host,
            f"no checksum for {artifact.name}: {url} {gave}; pin it with "
            f"artifact_sha256={{'{artifact.name}': '<sha256>'}}",
        ) from None
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise setting_error("artifact_sha256", host, f"{url} holds no sha256 digest")
    return digest


def _fetch_and_verify(url: str, path: str, sha256: str, label: str) -> str:
    """Shell: ``url`` fetched to ``path`` in bounded time, then checked; on failure nothing
    stays and one line says why."""
    mismatch = f"kubelab: {host.name}: {label}: {url} does not match its sha256 {sha256}"
    return (
        f"{bounds.fetch(url, path, label)}; "
        f"echo '{sha256}  {path}' | sha256sum -c --quiet - >/dev/null 2>&1 || "
        f"{shell.or_fail(mismatch, first=f'rm -f {path}; ')}"
    )


@operation()
def binary(artifact: Artifact, sha256: str, label: str = ""):
    """Install one executable at ``artifact.install_path`` once its sha256 matches."""
    dest = artifact.install_path
    if installed(artifact, sha256):
        host.noop(f"{dest} is {artifact.name} already")
        return
    url = download_url(artifact.url, setting("artifact_mirror"))
    temp = f"{dest}.download"
    yield f"mkdir -p {shlex.quote(dest.rsplit('/', 1)[0])}"
    fetch = _fetch_and_verify(url, temp, sha256, label or artifact.name)
    yield f"{fetch} && chmod 755 {temp} && mv -f {temp} {dest}"
    yield kept_digest_command(dest, sha256)


def archive_marker(artifact: Artifact) -> str:
    return f"/var/lib/kubelab/artifacts/{artifact.name}.sha256"


@operation()
def archive(artifact: Artifact, sha256: str, label: str = ""):
    """Unpack the ``members`` of a verified archive into ``artifact.install_path``; a marker
    file records the archive's sha256 and each member's as unpacked (``sha256sum`` lines), by
    which every installed member is checked on later runs (``installed``)."""
    marker = archive_marker(artifact)
    targets = member_targets(artifact)
    if installed(artifact, sha256):
        host.noop(f"{artifact.name} is installed")
        return
    url = download_url(artifact.url, setting("artifact_mirror"))
    temp = f"/var/lib/kubelab/artifacts/{artifact.name}"
    # Decompressed once: tar reads the whole archive for each member it is asked for.
    unpack = " && ".join(
        [f"gzip -dc {temp} > {temp}.tar"]
        + [
            f"tar -xf {temp}.tar -O --no-anchored {shlex.quote(member)} > {target}.new "
            f"&& chmod 755 {target}.new && mv -f {target}.new {target}"
            for member, target in targets.items()
        ]
    )
    yield f"mkdir -p /var/lib/kubelab/artifacts {shlex.quote(artifact.install_path)}"
    fetch = _fetch_and_verify(url, temp, sha256, label or artifact.name)
    unpacked = f"{{ {unpack}; unpacked=$?; rm -f {temp}.tar; [ $unpacked = 0 ]; }}"
    paths = " ".join(shlex.quote(target) for target in targets.values())
    recorded = (
        f"sums=$(sha256sum {paths}) && {{ echo '{sha256}  {artifact.name}'; "
        f"printf '%s\\n' \"$sums\"; }} > {marker}.new && mv -f {marker}.new {marker}"
    )
    yield f"{fetch} && {unpacked} && {recorded} && rm -f {temp}"
    yield kept_digests_command(marker)


def member_targets(artifact: Artifact) -> dict[str, str]:
    """Archive member -> the path it is installed at."""
    return {member: f"{artifact.install_path}/{name}" for member, name in artifact.members}


def installed_path(artifact: Artifact) -> str:
    """The path whose change says the artifact changed: the binary, or an archive's marker."""
    return archive_marker(artifact) if artifact.members else artifact.install_path


def register(artifact: Artifact):
    """Name to ``hoststate`` what installing ``artifact`` reads on this host."""
    if artifact.members:
        hoststate.manage(archive_marker(artifact), digest=False)
        hoststate.will_ask(ArchiveMarker, path=archive_marker(artifact))
        for target in member_targets(artifact).values():
            hoststate.manage(target)
    else:
        hoststate.manage(artifact.install_path)


def installed(artifact: Artifact, sha256: str) -> bool:
    """Whether this host holds ``artifact`` with this sha256: a binary's digest is that one;
    each member of an archive has the digest its marker recorded when that archive was
    unpacked (another release unpacked since, or a member changed, and it has not)."""
    if not artifact.members:
        return (hoststate.file(artifact.install_path) or {}).get("sha256") == sha256
    hoststate.read_ahead()  # the marker is read with the rest of this host's state
    marker = once.fact(ArchiveMarker, path=archive_marker(artifact))
    if not marker or marker["archive"] != sha256:
        return False
    return all(
        marker["members"].get(target) == (hoststate.file(target) or {}).get("sha256")
        for target in member_targets(artifact).values()
    )


def operation_of(artifact: Artifact):
    """The operation that installs ``artifact``: ``archive`` or ``binary``."""
    return archive if artifact.members else binary


def install(artifact: Artifact, label: str | None = None) -> placement.Step:
    """Install a release artifact (a binary, or an archive's members) checked against its
    sha256: a step of ``placement`` (its path: see ``installed_path``)."""
    register(artifact)
    name = f"Install {label or artifact.name}"
    sha256 = expected_sha256(artifact)

    def commands():
        return operation_of(artifact)._inner(artifact=artifact, sha256=sha256, label=name)

    return placement.add(
        name, installed_path(artifact), lambda: not installed(artifact, sha256), commands
    )
