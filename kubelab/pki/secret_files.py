"""Putting keys and kubeconfigs on hosts without ever exposing them.

A secret travels into a private staging directory (mode 0700), gets its owner and mode there,
and only then moves into place, so no other user can read it at any moment; its content is never
shown in pyinfra's output (no diff, no command line holds it).
"""

import posixpath
from io import BytesIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation

from .. import engine

STAGING = "/var/lib/kubelab/staging"


@operation()
def put_secret(dest: str, content: bytes, user: str, group: str, mode: int):
    """``dest`` holds ``content``, owned by ``user``:``group`` with ``mode`` (as digits)."""
    current = engine.file_state(dest)
    if current and current["sha256"] == engine.sha256(content):
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


def secret(
    name: str, dest: str, content: bytes, user: str = "root", group: str = "root", mode: int = 600
) -> engine.Step:
    """The step putting ``content`` at ``dest``: one per file and host in a run (a file two
    components install, the same, is the first one's)."""
    engine.manage(dest)
    wanted = (content, user, group, mode)
    placed = engine.run_cache("secrets").setdefault(host.name, {})
    if dest in placed and placed[dest][0] == wanted:
        return placed[dest][1]

    def differs():
        return engine.differs(dest, content, user, group, mode)

    def commands():
        return put_secret._inner(dest=dest, content=content, user=user, group=group, mode=mode)

    step = engine.add_step(name, dest, differs, commands)
    placed[dest] = (wanted, step)
    return step
