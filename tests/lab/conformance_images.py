"""The images Kubernetes' conformance suite runs, built here (no registry is reachable).

The suite names its images in test/utils/image/manifest.go of k8s.io/kubernetes: a registry
key (promoterE2eRegistry, gcRegistry, ...), a name and a tag. ``KUBE_TEST_REPO_LIST`` names a
YAML file that maps those registry keys elsewhere, names and tags unchanged: the lab maps them
below ``lab.local`` (``repo_list``) and builds each image under the name that results, as an
OCI archive like images.py's (same layout, same cache), for kubelab's ``image_archives``.

Built so far: agnhost (both tags the suite asks for), busybox, pause, nginx. The others are
listed in MISSING with the plan for each.

    python3 tests/lab/conformance_images.py    # build them (if needed), print paths and sizes
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import builds
import images
from images import Image
from util import LabError, run

KUBE_VERSION = "v1.35.8"  # the release the lab builds (kube_version in deploys/defaults.py)
LAB_REGISTRY = "lab.local"

# manifest.go's registry keys -> where the lab's images are named. invalidRegistry and
# privateRegistry keep upstream's value: the tests that use them expect the pull to fail.
REGISTRIES = {
    "promoterE2eRegistry": f"{LAB_REGISTRY}/e2e-test-images",
    "buildImageRegistry": f"{LAB_REGISTRY}/build-image",
    "gcEtcdRegistry": LAB_REGISTRY,
    "gcRegistry": LAB_REGISTRY,
    "sigStorageRegistry": f"{LAB_REGISTRY}/sig-storage",
    "dockerLibraryRegistry": f"{LAB_REGISTRY}/library",
    "cloudProviderGcpRegistry": f"{LAB_REGISTRY}/cloud-provider-gcp",
}

# The images the [Conformance] tests of v1.35.8 use (`e2e.test --list-images` lists every
# image of the suite; these are the conformance tests' ones): registry key, name, tag.
SUITE_IMAGES = {
    "agnhost": ("promoterE2eRegistry", "agnhost", "2.59"),
    "agnhost-prev": ("promoterE2eRegistry", "agnhost", "2.55"),
    "busybox": ("promoterE2eRegistry", "busybox", "1.37.0-1"),
    "nginx": ("promoterE2eRegistry", "nginx", "1.14-4"),
    "nonewprivs": ("promoterE2eRegistry", "nonewprivs", "1.3"),
    "jessie-dnsutils": ("promoterE2eRegistry", "jessie-dnsutils", "1.7"),
    "nautilus": ("promoterE2eRegistry", "nautilus", "1.7"),
    "sample-apiserver": ("promoterE2eRegistry", "sample-apiserver", "1.29.2"),
    "etcd": ("gcEtcdRegistry", "etcd", "3.6.6-0"),
    "pause": ("gcRegistry", "pause", "3.10.1"),
}

# Not built yet, and how each would be.
MISSING = {
    "nonewprivs": "go build of test/images/nonewprivs (nnp.go) from the k8s.io/kubernetes "
    "module (builds.py, like agnhost), installed setuid root at /usr/local/bin/nnp in a "
    "Debian minbase root; CMD /usr/local/bin/nnp",
    "jessie-dnsutils": "Debian minbase root with bind9-dnsutils (dig, nslookup), libc-bin "
    "(getent), coreutils (seq), dnsutils' ENTRYPOINT-less sh as upstream's Dockerfile",
    "nautilus": "the agnhost root with test/images/nautilus/html/* under /html and CMD "
    "['test-webserver'] (upstream's Dockerfile), tag 1.7",
    "sample-apiserver": "builds.py: go build of k8s.io/sample-apiserver at v0.35.8 (already a "
    "staging replace of the kube wrapper) at /sample-apiserver, entrypoint as upstream",
    "etcd": "builds.py's etcd v3.6.14 (the lab's own) at /usr/local/bin/etcd and etcdctl, "
    "tagged 3.6.6-0 with a label saying which release it really is",
}


def suite_name(image: str) -> str:
    """The reference the suite uses for ``image`` once ``repo_list`` is in effect."""
    key, name, tag = SUITE_IMAGES[image]
    return f"{REGISTRIES[key]}/{name}:{tag}"


def repo_list() -> str:
    """The KUBE_TEST_REPO_LIST file: manifest.go's RegistryList in YAML (JSON strings)."""
    return "".join(f'{key}: "{value}"\n' for key, value in REGISTRIES.items())


# ------------------------------------------------------------------------------------ agnhost

# What the tests run inside agnhost besides /agnhost (its Dockerfile: bind-tools curl
# netcat-openbsd iproute2 iperf bash; getent is libc-bin's, in every Debian root).
AGNHOST_PACKAGES = ["curl", "netcat-openbsd", "bind9-dnsutils", "iproute2", "iperf"]
AGNHOST_NEEDS = ["usr/bin/curl", "usr/bin/nc", "usr/bin/dig", "usr/bin/nslookup", "usr/bin/ip"]
AGNHOST_PORTS = {f"{port}/tcp": {} for port in (80, 8080, 8081, 9376, 5000)}
# The Dockerfile's `adduser -u 1000 -D user-defined-in-image` and `addgroup -g 50000 ...`.
AGNHOST_USERS = "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n"
AGNHOST_GROUPS = (
    "user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n"
)


def debian_root(root: Path, packages: list[str]) -> None:
    """A Debian minbase root with ``packages``, trimmed like images.py's nginx root."""
    argv = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(packages)}"]
    result = run(
        *argv,
        *images.MMDEBSTRAP_HOOKS,
        images.SUITE,
        str(root),
        *images.NGINX_SOURCES,
        check=False,
        capture_output=True,
    )
    if result.returncode != 0:
        raise LabError(f"mmdebstrap failed:\n{(result.stdout + result.stderr)[-3000:]}")
    images.trim(root, images.NGINX_TRIM)


def module_dir(kube_version: str) -> Path:
    info = builds.go_json(
        ["mod", "download", "-json", f"k8s.io/kubernetes@{kube_version}"], Path("/")
    )
    return Path(info["Dir"])


def agnhost_image(tag: str, kube_version: str = KUBE_VERSION) -> Image:
    """agnhost as upstream's Dockerfile makes it, on Debian instead of Alpine. The suite's two
    tags are the same program (test/images/agnhost at ``kube_version``); each image's label
    says which tag it is for, which gives them distinct digests."""
    build, dns = builds.agnhost(kube_version), builds.coredns()
    version = builds.agnhost_version(kube_version)

    def make_root(root: Path) -> dict:
        debian_root(root, AGNHOST_PACKAGES)
        shutil.copyfile(builds.ensure_built(build) / "agnhost", root / "agnhost")
        shutil.copyfile(builds.ensure_built(dns) / "coredns", root / "coredns")
        for program in ("agnhost", "coredns"):
            (root / program).chmod(0o755)
        (root / "agnhost-2").symlink_to("agnhost")
        porter = module_dir(kube_version) / "test/images/agnhost/porter"
        for name in ("localhost.crt", "localhost.key"):
            shutil.copyfile(porter / name, root / name)
        (root / "uploads").mkdir()
        with open(root / "etc/passwd", "a") as passwd:
            passwd.write(AGNHOST_USERS)
        with open(root / "etc/group", "a") as group:
            group.write(AGNHOST_GROUPS)
        missing = [rel for rel in AGNHOST_NEEDS if not os.path.lexists(root / rel)]
        if missing:
            raise LabError(f"the agnhost root lacks {', '.join(missing)}")
        return {
            "org.opencontainers.image.version": tag,
            "io.kubelab.agnhost.built-from": f"k8s.io/kubernetes@{kube_version} "
            f"test/images/agnhost (VERSION {version})",
        }

    name = suite_name("agnhost").rsplit(":", 1)[0]
    return Image(
        name=name,
        tag=tag,
        config={
            "Entrypoint": ["/agnhost"],
            "Cmd": ["pause"],
            "Env": [images.PATH_ENV],
            "ExposedPorts": AGNHOST_PORTS,
            "WorkingDir": "/",
        },
        recipe=[
            build.recipe(),
            dns.recipe(),
            AGNHOST_PACKAGES,
            AGNHOST_USERS,
            AGNHOST_GROUPS,
            images.NGINX_SOURCES,
            images.NGINX_TRIM,
        ],
        make_root=make_root,
    )


# ------------------------------------------------------------------------------------ busybox

BUSYBOX_PACKAGE = "busybox-static"
# Applets the conformance tests call (sh, sysctl, wget --post-data, ...), checked in the root.
BUSYBOX_NEEDS = ["sh", "sysctl", "wget", "nslookup", "cat", "sleep", "test", "hostname", "env"]


def busybox_applets(busybox: Path) -> list[str]:
    result = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise LabError(f"{busybox} --list failed: {result.stderr.strip()}")
    return result.stdout.split()


def make_busybox_root(root: Path) -> dict:
    """Debian's static busybox at /bin/busybox, every applet a link beside it (as the busybox
    image has them), a root and a nobody user, /tmp."""
    with tempfile.TemporaryDirectory(prefix="busybox-", dir=images.WORK) as scratch:
        run("apt-get", "download", BUSYBOX_PACKAGE, cwd=scratch, capture_output=True)
        (deb,) = Path(scratch).glob(f"{BUSYBOX_PACKAGE}_*.deb")
        version = deb.name.split("_")[1].replace("%3a", ":")
        run("dpkg-deb", "-x", str(deb), str(Path(scratch) / "x"))
        (root / "bin").mkdir()
        shutil.copyfile(Path(scratch) / "x/bin/busybox", root / "bin/busybox")
    (root / "bin/busybox").chmod(0o755)
    applets = busybox_applets(root / "bin/busybox")
    missing = [name for name in BUSYBOX_NEEDS if name not in applets]
    if missing:
        raise LabError(f"Debian's busybox lacks the applets {', '.join(missing)}")
    for name in applets:
        if name != "busybox":
            (root / "bin" / name).symlink_to("busybox")
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
    )
    (root / "etc/group").write_text("root:x:0:\nnobody:x:65534:\n")
    for directory in ("root", "home", "var", "usr"):
        (root / directory).mkdir()
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    return {"org.opencontainers.image.version": version, "debian.busybox-static.version": version}


def busybox_image() -> Image:
    name, tag = suite_name("busybox").rsplit(":", 1)
    return Image(
        name=name,
        tag=tag,
        config={"Cmd": ["sh"], "Env": [images.PATH_ENV]},
        recipe=[images.SUITE, BUSYBOX_PACKAGE, BUSYBOX_NEEDS],
        make_root=make_busybox_root,
    )


# ------------------------------------------------------------------------------ pause, nginx


def pause_image() -> Image:
    """The lab's own pause program (images.py) under the suite's pause name."""
    lab = images.pause_image()
    name, tag = suite_name("pause").rsplit(":", 1)
    return Image(name=name, tag=tag, config=lab.config, recipe=lab.recipe, make_root=lab.make_root)


NGINX_DOCROOT = "usr/share/nginx/html"  # nginx's own image serves this (index.html)


def make_nginx_root(root: Path) -> dict:
    """images.py's Debian nginx root, its default site serving /usr/share/nginx/html (where
    nginx-common puts index.html, and where the suite's tests look)."""
    labels = images.make_nginx_root(root)
    site = root / "etc/nginx/sites-available/default"
    config = site.read_text()
    if "root /var/www/html;" not in config:
        raise LabError(f"{site} no longer says `root /var/www/html;`")
    site.write_text(config.replace("root /var/www/html;", f"root /{NGINX_DOCROOT};"))
    if not (root / NGINX_DOCROOT / "index.html").is_file():
        raise LabError(f"the nginx root lacks /{NGINX_DOCROOT}/index.html")
    return labels


def nginx_image() -> Image:
    lab = images.nginx_image()
    name, tag = suite_name("nginx").rsplit(":", 1)
    return Image(
        name=name,
        tag=tag,
        config=lab.config,
        recipe=[lab.recipe, NGINX_DOCROOT],
        make_root=make_nginx_root,
    )


def conformance_images() -> list[Image]:
    tags = (SUITE_IMAGES["agnhost"][2], SUITE_IMAGES["agnhost-prev"][2])
    every = [agnhost_image(tag) for tag in tags]
    return every + [busybox_image(), pause_image(), nginx_image()]


def ensure_images() -> dict[str, Path]:
    """Suite reference -> archive, for every image built so far, built where not cached."""
    return {image.reference: images.ensure_image(image) for image in conformance_images()}


def main() -> int:
    try:
        archives = ensure_images()
    except LabError as error:
        print(f"conformance images: {error}", file=sys.stderr)
        return 1
    for reference, archive in archives.items():
        print(f"{reference}\t{archive}\t{archive.stat().st_size / 1e6:.1f} MB")
    for name, plan in MISSING.items():
        print(f"missing {suite_name(name)}: {plan}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
