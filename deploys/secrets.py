"""Putting keys and kubeconfigs on hosts without ever exposing them.

A secret travels into a private staging directory (mode 0700), gets its owner and mode there,
and only then moves into place, so no other user can read it at any moment; its content is never
shown in pyinfra's output (no diff, no command line holds it).
"""

import hashlib
import posixpath
from io import BytesIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation
from pyinfra.facts.files import File, Sha256File

STAGING = "/var/lib/kubelab/staging"


@operation()
def secret(dest: str, content: bytes, user: str = "root", group: str = "root", mode: int = 600):
    """``dest`` holds ``content``, owned by ``user``:``group`` with ``mode`` (as digits)."""
    current = host.get_fact(File, path=dest)
    same = host.get_fact(Sha256File, path=dest) == hashlib.sha256(content).hexdigest()
    if current and same:
        if (current["user"], current["group"]) != (user, group):
            yield f"chown {user}:{group} {dest}"
        if current["mode"] != mode:
            yield f"chmod {mode} {dest}"
        if (current["user"], current["group"], current["mode"]) == (user, group, mode):
            host.noop(f"{dest} is in place")
        return
    temp = posixpath.join(STAGING, f"{posixpath.basename(dest)}.upload")
    yield f"install -d -m 700 {STAGING} && mkdir -p {posixpath.dirname(dest)}"
    yield FileUploadCommand(BytesIO(content), temp, remote_temp_filename=temp + ".part")
    yield f"chown {user}:{group} {temp} && chmod {mode} {temp} && mv -f {temp} {dest}"
