#!/usr/bin/env python3
"""The lab's artifact mirror: kubelab's release artifacts in upstream's layout, made from the
programs builds.py built here, plus the lab's image archives.

Every artifact lands at ``<root>/<upstream host>/<upstream path>``, packed as upstream packs it
(a bare binary, or a tarball with upstream's member names), with its checksum file where
upstream publishes one. ``artifact_sha256.json`` at the root pins every digest; the lab's
group_data passes it to kubelab as ``artifact_sha256``, so the deploy's own download-and-verify
path runs unchanged. MIRROR.txt says what each file is.

    python3 tests/lab/mirror.py DEST      (lab.py up does this for $LAB_DIR/mirror)

With LAB_EXTRA_KUBE_VERSIONS=v1.34.x (or an exact v1.34.4; comma-separated) the mirror also
serves that Kubernetes release's binaries, built the same way, pinned as ``kubelet@v1.34.4``
(the upgrade scenario, tests/lab/upgrade_scenario.py).
"""

import ast
import gzip
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tarfile
from contextlib import suppress
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import builds
import lab_images

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PINS = "artifact_sha256.json"
IMAGES = "lab/images"  # where the image archives are served
SETTINGS_FILES = (
    "cluster_settings.py",
    "run_settings.py",
)  # in kubelab/settings/: each Setting(...)


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kubelab_defaults(repo: Path = REPO) -> dict:
    """kubelab's DEFAULTS, read from the literal ``Setting(name, default, ...)`` entries of the
    settings' declarations (the lab runs on the system python3, without pyinfra)."""
    defaults = {}
    for name in SETTINGS_FILES:
        for node in ast.walk(ast.parse((repo / "kubelab" / "settings" / name).read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Setting":
                with suppress(ValueError):
                    defaults[ast.literal_eval(node.args[0])] = ast.literal_eval(node.args[1])
    return defaults


def versions(repo: Path = REPO) -> SimpleNamespace:
    return SimpleNamespace(**kubelab_defaults(repo))


def planned(repo: Path = REPO) -> list[tuple]:
    """(artifact, build, members: {member name: built file}) for every artifact kubelab fetches."""
    artifacts = load_module("kubelab_lab_artifacts", repo / "kubelab" / "engine" / "artifacts.py")
    v = versions(repo)
    kube = builds.kubernetes(v.kube_version)
    plan = [(artifacts.kube_binary(name, v.kube_version), kube, None) for name in kube.binaries]
    plan.append((artifacts.flanneld(v.flannel_version), builds.flannel(v.flannel_version), None))
    for artifact, build in (
        (artifacts.cni_plugins(v.cni_plugins_version), builds.cni_plugins(v.cni_plugins_version)),
        (
            artifacts.flannel_cni_plugin(v.flannel_cni_plugin_version),
            builds.flannel_cni_plugin(v.flannel_cni_plugin_version),
        ),
        (artifacts.etcd_release(v.etcd_version), builds.etcd(v.etcd_version)),
        (
            artifacts.containerd_release(v.containerd_version),
            builds.containerd(v.containerd_version),
        ),
    ):
        plan.append((artifact, build, {m: Path(m).name for m, _ in artifact.members}))
    plan.append((artifacts.runc_release(v.runc_version), builds.runc(v.runc_version), None))
    return plan


def extra_planned(repo: Path = REPO) -> list[tuple]:
    """The Kubernetes binaries of the extra releases ``LAB_EXTRA_KUBE_VERSIONS`` names (the
    upgrade scenario builds the cluster at one of them): pinned as ``<name>@<release>``."""
    artifacts = load_module("kubelab_lab_artifacts", repo / "kubelab" / "engine" / "artifacts.py")
    pinned = versions(repo).kube_version
    plan = []
    for version in builds.extra_kube_versions():
        if version == pinned:
            continue
        kube = builds.kubernetes(version)
        plan += [(artifacts.kube_binary(name, version), kube, None) for name in kube.binaries]
    return plan


def pin_key(artifact, extra: bool) -> str:
    """The key of ``artifact`` in artifact_sha256.json: its name, or for an extra release its
    name and release (kubelab prefers ``kubelet@v1.34.4`` to ``kubelet``)."""
    return f"{artifact.name}@{artifact.version}" if extra else artifact.name


def ensure_builds(repo: Path = REPO) -> None:
    for build in {b.key: b for _, b, _ in planned(repo) + extra_planned(repo)}.values():
        builds.ensure_built(build)


def member_source(member: str, build) -> str:
    """The built file an archive member is: its base name, or the flannel CNI plugin's."""
    name = Path(member).name
    return "flannel" if name.startswith("flannel-") else name


def write_tgz(dest: Path, members: dict[str, Path]) -> None:
    """A tarball like upstream's (mode 0755 members, fixed mtime): byte-identical on rebuild."""
    with (
        open(dest, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=1) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for member, source in members.items():
            info = tarfile.TarInfo(member if "/" in member else f"./{member}")
            info.size, info.mode, info.mtime = source.stat().st_size, 0o755, 0
            with open(source, "rb") as f:
                tar.addfile(info, f)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mirror_path(root: Path, url: str) -> Path:
    parts = urlsplit(url)
    return root / parts.netloc / parts.path.lstrip("/")


def write_artifact(root: Path, artifact, build, members, artifacts) -> str:
    """Pack one artifact and its checksum file; return its digest."""
    built = builds.output_dir(build)
    dest = mirror_path(root, artifact.url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if members is None:
        name = artifact.name.removesuffix("-amd64").removesuffix(".amd64")
        link_or_copy(built / name, dest)
    else:
        write_tgz(dest, {m: built / member_source(m, build) for m in members})
    digest = sha256(dest)
    listing = artifacts.checksum_url(artifact)
    text = digest if listing == artifact.url + ".sha256" else f"{digest}  {artifact.name}"
    sums = mirror_path(root, listing)
    with open(sums, "a") as f:  # etcd's SHA256SUMS lists several files
        f.write(text + "\n")
    return digest


def link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:  # another filesystem
        shutil.copy2(source, dest)


def recipe(plan, image_files: dict) -> str:
    parts = [(a.url, b.recipe(), m) for a, b, m in plan]
    parts.append(sorted((ref, sha256_of_name(p)) for ref, p in image_files.items()))
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def sha256_of_name(path: Path) -> str:
    return f"{path.name}:{path.stat().st_size}:{path.stat().st_mtime_ns}"


def build(root: Path, repo: Path = REPO) -> list[Path]:
    """(Re)build the mirror at ``root`` unless it is current; swapped in whole."""
    artifacts = load_module("kubelab_lab_artifacts", repo / "kubelab" / "engine" / "artifacts.py")
    extra = extra_planned(repo)
    plan = planned(repo) + extra
    image_files = lab_images.ensure_images()
    wanted = recipe(plan, image_files)
    stamp = root / "recipe.sha256"
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return sorted(root.rglob("*"))
    new = root.with_name(root.name + ".new")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    pins, notes = {}, []
    for artifact, build_, members in plan:
        key = pin_key(artifact, (artifact, build_, members) in extra)
        pins[key] = write_artifact(new, artifact, build_, members, artifacts)
        notes.append(
            f"{urlsplit(artifact.url).netloc}{urlsplit(artifact.url).path}\n    "
            f"built here from Go modules: {describe(build_)}"
        )
    for ref, archive in image_files.items():
        dest = new / IMAGES / archive.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(archive, dest)
        notes.append(
            f"{IMAGES}/{archive.name}\n    image archive of {ref} (tests/lab/lab_images.py)"
        )
    (new / PINS).write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
    (new / "MIRROR.txt").write_text(mirror_notes(notes))
    (new / "recipe.sha256").write_text(wanted + "\n")
    old = root.with_name(root.name + ".old")
    if root.exists():
        root.rename(old)
    new.rename(root)
    shutil.rmtree(old, ignore_errors=True)
    return sorted(root.rglob("*"))


def describe(build) -> str:
    text = f"{', '.join(build.modules)} {build.version}"
    if build.component == "flannel-cni-plugin":
        text += (
            " (its plugins/meta/flannel: the module github.com/flannel-io/cni-plugin is not "
            "served by the Go module proxy here, so the pinned release's path holds this "
            "ancestor of it)"
        )
    return text


def mirror_notes(notes: list[str]) -> str:
    return (
        "kubelab lab artifact mirror (written by tests/lab/mirror.py; not upstream's files)\n\n"
        "Layout: <upstream host>/<upstream path>, with upstream's checksum file names.\n"
        "Every program is the real upstream one, built on this machine from its Go module at\n"
        "the release in the path (tests/lab/builds.py), except where a note says otherwise.\n\n"
        + "\n".join(notes)
        + "\n"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    ensure_builds()
    for path in build(Path(sys.argv[1]).resolve()):
        print(path)
