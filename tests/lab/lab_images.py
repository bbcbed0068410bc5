"""The container images the cluster's final test runs, built here from Debian packages.

No image registry can be reached from this box, so the lab makes its own images:

- ``lab.local/pause:kubelab``, the pod sandbox: only /pause, the lab's own static program
  (files/pause.c, ``gcc -static -Os``).
- ``lab.local/nginx:1.22.1-debian12``: a Debian 12 minbase root (mmdebstrap) with Debian's
  nginx serving its default page on port 80 (and libc-bin's getent, the final test's name
  lookups).
- ``lab.local/coredns:v1.13.1`` and ``lab.local/metrics-server:v0.8.0``, the cluster add-ons:
  the program builds.py built from upstream's Go module alone at the root, with upstream's
  entrypoint and user, like upstream's distroless images (no shell, no libc).

Each is a single-platform (linux/amd64) OCI image layout in a tar, one gzip layer, named by
the ``io.containerd.image.name`` annotation, so that
``ctr -n k8s.io images import --platform linux/amd64 ARCHIVE`` imports it under exactly that
name. Archives are cached in $LAB_BUILD_CACHE/images/<name>-<tag>.tar with a recipe hash
beside them (<name>-<tag>.recipe): a warm run builds nothing.

    python3 tests/lab/lab_images.py    # build both (if needed), print their paths and sizes
"""

import gzip
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import builds
from base_image import DEBIAN, DEBIAN_SECURITY, SUITE
from builds import CACHE
from host import install_host_packages
from util import HERE, LabError, log, run

IMAGES = CACHE / "images"
WORK = CACHE / "work"
FORMAT = 1  # bump when the archive layout written below changes
PLATFORM = {"architecture": "amd64", "os": "linux"}
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MEDIA = "application/vnd.oci.image"

PAUSE_SOURCE = HERE / "files" / "pause.c"
STATIC_LIBC = "/usr/lib/x86_64-linux-gnu/libc.a"  # libc6-dev: what -static links
PAUSE_CC = ["gcc", "-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror"]

NGINX_VERSION = "1.22.1"  # upstream version of Debian 12's nginx package, in the tag
NGINX_PACKAGES = ["nginx"]
NGINX_SOURCES = [
    f"deb {DEBIAN} {SUITE} main",
    f"deb {DEBIAN} {SUITE}-updates main",
    f"deb {DEBIAN_SECURITY} {SUITE}-security main",
]
# Merged /usr the way debootstrap makes it (the usr-is-merged package): without the hook,
# mmdebstrap installs usrmerge, which pulls in perl (50 MB).
MMDEBSTRAP_HOOKS = ["--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"]
# Removed from the root: apt's lists and caches, docs (each package's copyright stays),
# man pages, message catalogs, logs of the build, and device nodes (a runtime mounts its own /dev).
NGINX_TRIM = [
    "var/lib/apt/lists/*",
    "var/cache/apt/*",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/log/*.log",
    "var/log/apt/*",
    "usr/share/doc/*/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/groff/*",
    "usr/share/lintian/*",
    "usr/share/linda/*",
    "usr/share/locale/*",
    "dev/*",
]
KEEP = ("copyright",)
# Like the nginx project's own image: the logs go to the container's output.
NGINX_LINKS = {
    "var/log/nginx/access.log": "/dev/stdout",
    "var/log/nginx/error.log": "/dev/stderr",
}
# What nginx needs at run time, checked in the built root.
NGINX_NEEDS = [
    "usr/sbin/nginx",
    "usr/bin/getent",  # libc-bin (Essential): the final test resolves names with it
    "usr/bin/bash",  # its /dev/tcp: the final test's requests from inside a pod
    "etc/nginx/sites-enabled/default",  # a link to sites-available/default
    "etc/nginx/sites-available/default",
    "var/www/html/index.nginx-debian.html",
    "var/lib/nginx",
    "var/log/nginx",
    "run",
]


@dataclass(frozen=True)
class Image:
    name: str  # repository, e.g. lab.local/pause
    tag: str
    config: dict  # the OCI image config's "config": Entrypoint, Cmd, Env, ...
    recipe: list  # everything the root is made from, for the cache's hash
    make_root: Callable[[Path], dict]  # fills the root; returns labels for the config

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def archive(self) -> Path:
        return IMAGES / f"{self.name.rsplit('/', 1)[-1]}-{self.tag}.tar"

    @property
    def stamp(self) -> Path:
        return self.archive.with_suffix(".recipe")

    def recipe_hash(self) -> str:
        recipe = [FORMAT, PLATFORM, self.reference, self.config, self.recipe]
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------------- the images


def make_pause_root(root: Path) -> dict:
    """Compile files/pause.c into ``root``/pause."""
    run(*PAUSE_CC, "-o", str(root / "pause"), str(PAUSE_SOURCE))
    return {}


def pause_image() -> Image:
    return Image(
        name="lab.local/pause",
        tag="kubelab",
        config={"Entrypoint": ["/pause"], "Env": [PATH_ENV]},
        recipe=[PAUSE_CC, PAUSE_SOURCE.read_text()],
        make_root=make_pause_root,
    )


def make_nginx_root(root: Path) -> dict:
    """A minbase root with nginx, trimmed; fails unless it holds the nginx version wanted."""
    packages = ",".join(NGINX_PACKAGES)
    argv = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={packages}"]
    result = run(
        *argv, *MMDEBSTRAP_HOOKS, SUITE, str(root), *NGINX_SOURCES, check=False, capture_output=True
    )
    if result.returncode != 0:  # the hooks are chatty: their output only when it failed
        raise LabError(f"mmdebstrap failed:\n{(result.stdout + result.stderr)[-3000:]}")
    version = package_version(root, "nginx")
    if version.split("-")[0] != NGINX_VERSION:
        raise LabError(f"{SUITE}'s nginx is {version} now: set NGINX_VERSION (the image's tag)")
    trim(root, NGINX_TRIM)
    for rel, target in NGINX_LINKS.items():
        (root / rel).unlink(missing_ok=True)
        (root / rel).symlink_to(target)
    missing = [rel for rel in NGINX_NEEDS if not os.path.lexists(root / rel)]
    if missing:
        raise LabError(f"the nginx root lacks {', '.join(missing)}")
    return {"org.opencontainers.image.version": version, "debian.nginx.version": version}


def nginx_image() -> Image:
    return Image(
        name="lab.local/nginx",
        tag=f"{NGINX_VERSION}-debian12",
        config={
            "Cmd": ["nginx", "-g", "daemon off;"],
            "Env": [PATH_ENV],
            "ExposedPorts": {"80/tcp": {}},
            "StopSignal": "SIGQUIT",  # nginx's graceful shutdown
        },
        recipe=[
            SUITE,
            NGINX_SOURCES,
            NGINX_PACKAGES,
            MMDEBSTRAP_HOOKS,
            NGINX_TRIM,
            KEEP,
            NGINX_LINKS,
        ],
        make_root=make_nginx_root,
    )


# The add-ons run as upstream's images do: CoreDNS as distroless's nonroot (it binds :53 in its
# pod's network namespace, which containerd 2 opens to unprivileged users:
# enable_unprivileged_ports), metrics-server as nobody.
NONROOT = "65532:65532"
NOBODY = "65534"


def program_image(name: str, build: builds.Build, program: str, config: dict) -> Image:
    """``lab.local/<name>:<version>``: ``build``'s ``program`` at /, a /tmp, nothing else."""

    def make_root(root: Path) -> dict:
        built = builds.ensure_built(build) / program
        shutil.copyfile(built, root / program)
        (root / program).chmod(0o755)
        (root / "tmp").mkdir()
        (root / "tmp").chmod(0o1777)
        return {"org.opencontainers.image.version": build.version}

    return Image(
        name=f"lab.local/{name}",
        tag=build.version,
        config={"Entrypoint": [f"/{program}"], "Env": [PATH_ENV], "WorkingDir": "/", **config},
        recipe=[build.recipe(), program],
        make_root=make_root,
    )


def coredns_image() -> Image:
    ports = {"53/tcp": {}, "53/udp": {}}
    return program_image(
        "coredns", builds.coredns(), "coredns", {"User": NONROOT, "ExposedPorts": ports}
    )


def metrics_server_image() -> Image:
    build = builds.metrics_server()
    return program_image("metrics-server", build, "metrics-server", {"User": NOBODY})


def package_version(root: Path, package: str) -> str:
    """The installed version of ``package`` in ``root``, from dpkg's status file."""
    status = (root / "var/lib/dpkg/status").read_text()
    for stanza in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Package") == package and fields.get("Status", "").endswith(" installed"):
            return fields["Version"]
    raise LabError(f"{package} is not installed in {root}")


def trim(root: Path, patterns: list[str]) -> None:
    """Remove what ``patterns`` match below ``root``, except files named in KEEP."""
    for pattern in patterns:
        for path in root.glob(pattern):
            if path.name in KEEP:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


# ------------------------------------------------------------------------- OCI layout, as a tar


class Digesting:
    """A write-only stream that hashes and counts what passes through it to ``out``."""

    def __init__(self, out=None):
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        if self.out:
            self.out.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha.hexdigest()}"


def clean_entry(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uname = info.gname = ""  # numeric owners only: the host's names mean nothing
    return info


def write_layer(root: Path, blob: Path) -> tuple[dict, str]:
    """Tar and gzip ``root`` into ``blob``: its descriptor and the layer's diff ID."""
    with open(blob, "wb") as out:
        compressed = Digesting(out)
        with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, compresslevel=6) as gz:
            plain = Digesting(gz)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for child in sorted(root.iterdir()):
                    tar.add(child, arcname=child.name, filter=clean_entry)
    descriptor = {
        "mediaType": f"{MEDIA}.layer.v1.tar+gzip",
        "digest": compressed.digest,
        "size": compressed.size,
    }
    return descriptor, plain.digest


def add_blob(blobs: Path, media_type: str, value: dict) -> dict:
    """Store ``value`` as JSON in ``blobs``; its descriptor."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def write_layout(image: Image, root: Path, layout: Path) -> None:
    """An OCI image layout of ``root`` (one layer) in the directory ``layout``."""
    labels = image.make_root(root)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer, diff_id = write_layer(root, blobs / "layer.tmp")
    (blobs / "layer.tmp").rename(blobs / layer["digest"].split(":")[1])
    config = dict(image.config, Labels=labels) if labels else image.config
    rootfs = {"type": "layers", "diff_ids": [diff_id]}
    config_blob = {**PLATFORM, "config": config, "rootfs": rootfs}
    manifest = {
        "schemaVersion": 2,
        "mediaType": f"{MEDIA}.manifest.v1+json",
        "config": add_blob(blobs, f"{MEDIA}.config.v1+json", config_blob),
        "layers": [layer],
    }
    entry = add_blob(blobs, manifest["mediaType"], manifest)
    entry["platform"] = PLATFORM
    entry["annotations"] = {
        "io.containerd.image.name": image.reference,
        "org.opencontainers.image.ref.name": image.tag,
    }
    index = {"schemaVersion": 2, "mediaType": f"{MEDIA}.index.v1+json", "manifests": [entry]}
    (layout / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}\n')


def tar_entry(path: Path, arcname: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mtime = 0
    if path.is_dir():
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = path.stat().st_size, 0o644
    return info


def write_archive(layout: Path, archive: Path) -> None:
    """Tar the layout directory (files at the tar's top level) into ``archive``."""
    paths = sorted(layout.rglob("*"), key=lambda p: (p.parent != layout, str(p)))
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            info = tar_entry(path, str(path.relative_to(layout)))
            if info.isdir():
                tar.addfile(info)
            else:
                with open(path, "rb") as f:
                    tar.addfile(info, f)


# ------------------------------------------------------------------------------------- caching


def is_cached(image: Image) -> bool:
    stamp = image.stamp
    return (
        image.archive.is_file()
        and stamp.is_file()
        and stamp.read_text().strip() == image.recipe_hash()
    )


def build(image: Image) -> None:
    """Build ``image``'s archive in a scratch directory and move it into the cache."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="image-", dir=WORK))
    tmp = image.archive.with_name(f".{image.archive.name}.{os.getpid()}.tmp")
    try:
        (scratch / "root").mkdir()
        write_layout(image, scratch / "root", scratch / "layout")
        write_archive(scratch / "layout", tmp)
        image.stamp.unlink(missing_ok=True)
        tmp.rename(image.archive)
        stamp_tmp = tmp.with_suffix(".recipe")
        stamp_tmp.write_text(image.recipe_hash() + "\n")
        stamp_tmp.rename(image.stamp)
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)


def ensure_image(image: Image) -> Path:
    """The archive of ``image``, built now unless cached."""
    if is_cached(image):
        return image.archive
    if os.geteuid() != 0:
        raise LabError("building the lab's images needs root (mmdebstrap, file owners)")
    ensure_tools()
    started = time.monotonic()
    log(f"building image {image.reference}")
    build(image)
    log(f"built {image.reference} in {time.monotonic() - started:.1f} s: {image.archive}")
    return image.archive


def have_tools() -> bool:
    return all([shutil.which("gcc"), shutil.which("mmdebstrap"), Path(STATIC_LIBC).exists()])


def ensure_tools() -> None:
    """gcc, libc6-dev and mmdebstrap are host packages (host.py): installed if one is missing."""
    if not have_tools():
        install_host_packages()
    if not have_tools():
        raise LabError("building the images needs the Debian packages gcc, libc6-dev, mmdebstrap")


def ensure_images() -> dict[str, Path]:
    """Image reference -> archive, for every image of the lab, built where not cached."""
    every = (pause_image(), nginx_image(), coredns_image(), metrics_server_image())
    return {image.reference: ensure_image(image) for image in every}


def report(label: str, ensure) -> int:
    """Build what ``ensure`` names and print each archive with its size; 1 on a failure."""
    try:
        archives = ensure()
    except LabError as error:
        print(f"{label}: {error}", file=sys.stderr)
        return 1
    for reference, archive in archives.items():
        print(f"{reference}\t{archive}\t{archive.stat().st_size / 1e6:.1f} MB")
    return 0


def main() -> int:
    return report("images", ensure_images)


if __name__ == "__main__":
    sys.exit(main())
