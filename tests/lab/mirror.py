#!/usr/bin/env python3
"""Fill a directory with kubelab's modern-profile artifacts in upstream's layout.

Every artifact of ``master_artifacts`` + ``minion_artifacts`` (kubelab's defaults) lands at
``<root>/<upstream host>/<upstream path>``, beside ``<same path>.sha256`` holding only the hex
digest. Kube binaries and flannel are stand-ins (tests/lab/standins); the CNI plugins are
Debian's real ones (/usr/lib/cni). MIRROR.txt at the root says which is which.

    python3 tests/lab/mirror.py DEST      (lab.py up does this for $LAB_DIR/mirror)
"""

import ast
import gzip
import hashlib
import importlib.util
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from contextlib import suppress
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEBIAN_CNI = Path("/usr/lib/cni")


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kubelab_defaults(path: Path) -> dict:
    """DEFAULTS of deploys/defaults.py; without pyinfra (the lab runs on the system python3),
    read from the literal ``Setting(name, default, ...)`` entries of its SETTINGS list."""
    try:
        return load_module("kubelab_lab_defaults", path).DEFAULTS
    except ImportError:  # pyinfra, or a package-relative import
        pass
    defaults = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Setting":
            with suppress(ValueError):
                defaults[ast.literal_eval(node.args[0])] = ast.literal_eval(node.args[1])
    return defaults


def kubelab_artifacts(repo: Path):
    """The artifact list and the defaults, read from the project's own files (no install)."""
    artifacts = load_module("kubelab_lab_artifacts", repo / "deploys" / "artifacts.py")
    data = SimpleNamespace(**kubelab_defaults(repo / "deploys" / "defaults.py"))
    unique = {a.url: a for a in artifacts.master_artifacts(data) + artifacts.minion_artifacts(data)}
    return artifacts, data, list(unique.values())


def standin_builder():
    sys.path.insert(0, str(HERE))
    from standins import build  # tests/lab/standins

    return build


def make_artifact(artifact, artifacts, data, dest: Path, build) -> str:
    """Write ``artifact`` to ``dest``; return what it is, for MIRROR.txt."""
    name = artifact.name
    if name in artifacts.KUBE_MASTER_BINARIES + artifacts.KUBE_MINION_BINARIES:
        build(name, data.kube_version, dest)
        return f"stand-in for {name} {data.kube_version}"
    if name.startswith("flanneld-"):
        build("flanneld", data.flannel_version, dest)
        return f"stand-in for flanneld {data.flannel_version}"
    if name.startswith("cni-plugins-linux-"):
        plugins = sorted(p for p in DEBIAN_CNI.iterdir() if p.is_file())
        if not plugins:
            raise SystemExit(f"no CNI plugins in {DEBIAN_CNI}: install containernetworking-plugins")
        write_tgz(dest, {p.name: p.read_bytes() for p in plugins})
        names = " ".join(p.name for p in plugins)
        return (
            f"REAL CNI plugins from Debian's containernetworking-plugins ({debian_cni_version()}),"
            f" not upstream {data.cni_plugins_version}: {names}"
        )
    if name.startswith("cni-plugin-flannel-linux-"):
        member = f"flannel-{name.split('-')[4]}"
        with tempfile.TemporaryDirectory() as tmp:
            build(member, data.flannel_cni_plugin_version, Path(tmp) / member)
            write_tgz(dest, {member: (Path(tmp) / member).read_bytes()})
        return f"stand-in {member} (flannel CNI plugin {data.flannel_cni_plugin_version})"
    raise SystemExit(f"mirror.py does not know how to make {name} ({artifact.url})")


def write_tgz(dest: Path, members: dict[str, bytes]) -> None:
    """A tarball like upstream's (./<name> at the root, mode 0755), byte-identical on rebuild."""
    with (
        open(dest, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=1) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for member, content in members.items():
            info = tarfile.TarInfo(f"./{member}")
            info.size, info.mode, info.mtime = len(content), 0o755, 0
            tar.addfile(info, io.BytesIO(content))


def debian_cni_version() -> str:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "containernetworking-plugins"],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or "unknown version"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(root: Path, repo: Path = REPO) -> list[Path]:
    """(Re)build the mirror at ``root``; swap it in whole so a running server never sees half."""
    artifacts, data, wanted = kubelab_artifacts(repo)
    builder = standin_builder()
    new = root.with_name(root.name + ".new")
    shutil.rmtree(new, ignore_errors=True)
    notes, written = [], []
    for artifact in wanted:
        url = urlsplit(artifact.url)
        dest = new / url.netloc / url.path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        what = make_artifact(artifact, artifacts, data, dest, builder)
        dest.chmod(0o644 if artifact.members else 0o755)
        dest.with_name(dest.name + ".sha256").write_text(sha256(dest))
        notes.append(f"{url.netloc}{url.path}\n    {what}")
        written.append(dest)
    (new / "MIRROR.txt").write_text(mirror_notes(notes))
    old = root.with_name(root.name + ".old")
    if root.exists():
        root.rename(old)
    new.rename(root)
    shutil.rmtree(old, ignore_errors=True)
    return [root / p.relative_to(new) for p in written]


def mirror_notes(notes: list[str]) -> str:
    return (
        "kubelab lab artifact mirror (written by tests/lab/mirror.py; not upstream's files)\n\n"
        "Layout: <upstream host>/<upstream path>, each with <path>.sha256 (hex digest only).\n"
        "Kube binaries and flannel are STAND-INS: small programs that behave enough like the\n"
        "real ones for the deploy and its specs (tests/lab/standins). The CNI plugins tarball\n"
        "holds Debian's REAL plugins, whose version is Debian's, not the one in the path.\n\n"
        + "\n".join(notes)
        + "\n"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    for path in build(Path(sys.argv[1]).resolve()):
        print(path)
