"""The images Kubernetes' conformance suite runs, built here (no registry is reachable).

The suite names its images in test/utils/image/manifest.go of k8s.io/kubernetes: a registry
key (promoterE2eRegistry, gcRegistry, ...), a name and a tag. ``KUBE_TEST_REPO_LIST`` names a
YAML file that maps those registry keys elsewhere, names and tags unchanged: the lab maps them
below ``lab.local`` (``repo_list``) and builds each image under the name that results, as an
OCI archive like lab_images.py's (same layout, same cache), for kubelab's ``image_archives``.

Where the k8s.io/kubernetes module has the image's source (agnhost, nonewprivs, nautilus) it
is built from the pinned release's, whose VERSION files may be newer than the tag the suite
asks for: a label on each image says what it was built from. sample-apiserver and etcd are
built at the very releases their tags name; busybox, nginx and jessie-dnsutils come from
Debian 12's packages, pause is the lab's own.

    python3 tests/lab/conformance_images.py    # build them (if needed), print paths and sizes
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import builds
import lab_images
from lab_images import Image
from util import LabError, run

# the release the lab builds (kube_version in kubelab/settings/cluster_settings.py)
KUBE_VERSION = "v1.35.8"
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
    """A Debian minbase root with ``packages``, trimmed like lab_images.py's nginx root."""
    argv = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(packages)}"]
    result = run(
        *argv,
        *lab_images.MMDEBSTRAP_HOOKS,
        lab_images.SUITE,
        str(root),
        *lab_images.NGINX_SOURCES,
        check=False,
        capture_output=True,
    )
    if result.returncode != 0:
        raise LabError(f"mmdebstrap failed:\n{(result.stdout + result.stderr)[-3000:]}")
    lab_images.trim(root, lab_images.NGINX_TRIM)


def module_dir(kube_version: str) -> Path:
    info = builds.go_json(
        ["mod", "download", "-json", f"k8s.io/kubernetes@{kube_version}"], Path("/")
    )
    return Path(info["Dir"])


def make_agnhost_root(root: Path, kube_version: str) -> dict:
    """agnhost's root as its Dockerfile makes it; labels naming what it was built from."""
    debian_root(root, AGNHOST_PACKAGES)
    build = builds.agnhost(kube_version)
    copy_program(builds.ensure_built(build) / "agnhost", root / "agnhost")
    copy_program(builds.ensure_built(builds.coredns()) / "coredns", root / "coredns")
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
    source = f"test/images/agnhost (VERSION {builds.agnhost_version(kube_version)})"
    return {"io.kubelab.built-from": f"k8s.io/kubernetes@{kube_version} {source}"}


def copy_program(source: Path, target: Path, mode: int = 0o755) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(mode)


def agnhost_recipe(kube_version: str) -> list:
    return [
        builds.agnhost(kube_version).recipe(),
        builds.coredns().recipe(),
        AGNHOST_PACKAGES,
        AGNHOST_USERS,
        AGNHOST_GROUPS,
        lab_images.NGINX_SOURCES,
        lab_images.NGINX_TRIM,
    ]


AGNHOST_CONFIG = {
    "Entrypoint": ["/agnhost"],
    "Cmd": ["pause"],
    "Env": [lab_images.PATH_ENV],
    "ExposedPorts": AGNHOST_PORTS,
    "WorkingDir": "/",
}


def agnhost_image(tag: str, kube_version: str = KUBE_VERSION) -> Image:
    """agnhost as upstream's Dockerfile makes it, on Debian instead of Alpine. The suite's two
    tags are the same program (test/images/agnhost at ``kube_version``); each image's label
    says which tag it is for, which gives them distinct digests."""

    def make_root(root: Path) -> dict:
        labels = make_agnhost_root(root, kube_version)
        return {"org.opencontainers.image.version": tag, **labels}

    return Image(
        name=suite_name("agnhost").rsplit(":", 1)[0],
        tag=tag,
        config=AGNHOST_CONFIG,
        recipe=agnhost_recipe(kube_version),
        make_root=make_root,
    )


NAUTILUS_FILES = ("nautilus.jpg", "data.json")  # its Dockerfile: COPY html/<file> <file>


def nautilus_image(kube_version: str = KUBE_VERSION) -> Image:
    """agnhost with test/images/nautilus/html's files at / and CMD test-webserver (which
    serves the working directory), as nautilus' Dockerfile makes it on agnhost."""
    name, tag = suite_name("nautilus").rsplit(":", 1)

    def make_root(root: Path) -> dict:
        labels = make_agnhost_root(root, kube_version)
        html = module_dir(kube_version) / "test/images/nautilus/html"
        for file in NAUTILUS_FILES:
            shutil.copyfile(html / file, root / file)
        return {"org.opencontainers.image.version": tag, **labels}

    return Image(
        name=name,
        tag=tag,
        config={**AGNHOST_CONFIG, "Cmd": ["test-webserver"]},
        recipe=[agnhost_recipe(kube_version), NAUTILUS_FILES],
        make_root=make_root,
    )


def nonewprivs_image(kube_version: str = KUBE_VERSION) -> Image:
    """/usr/local/bin/nnp setuid root (its Dockerfile's chmod +s), CMD nnp."""
    name, tag = suite_name("nonewprivs").rsplit(":", 1)
    build = builds.nonewprivs(kube_version)

    def make_root(root: Path) -> dict:
        copy_program(builds.ensure_built(build) / "nnp", root / "usr/local/bin/nnp", 0o4755)
        make_tmp(root)
        source = f"k8s.io/kubernetes@{kube_version} test/images/nonewprivs"
        return {"org.opencontainers.image.version": tag, "io.kubelab.built-from": source}

    return Image(
        name=name,
        tag=tag,
        config={"Cmd": ["nnp"], "Env": [lab_images.PATH_ENV]},
        recipe=[build.recipe(), "setuid"],
        make_root=make_root,
    )


def make_tmp(root: Path) -> None:
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)


def sample_apiserver_build() -> builds.Build:
    """k8s.io/sample-apiserver at the release its tag names (1.29.2: v0.29.2)."""
    return builds.sample_apiserver("v0." + SUITE_IMAGES["sample-apiserver"][2].split(".", 1)[1])


def sample_apiserver_image() -> Image:
    """k8s.io/sample-apiserver at the release the tag names (1.29.2: v0.29.2) at /."""
    name, tag = suite_name("sample-apiserver").rsplit(":", 1)
    build = sample_apiserver_build()

    def make_root(root: Path) -> dict:
        copy_program(builds.ensure_built(build) / "sample-apiserver", root / "sample-apiserver")
        make_tmp(root)
        return {"org.opencontainers.image.version": tag, "io.kubelab.built-from": build.key}

    return Image(
        name=name,
        tag=tag,
        config={"Entrypoint": ["/sample-apiserver"], "Env": [lab_images.PATH_ENV]},
        recipe=[build.recipe()],
        make_root=make_root,
    )


def etcd_build() -> builds.Build:
    """etcd at the release its tag names (3.6.6-0: v3.6.6)."""
    return builds.etcd("v" + SUITE_IMAGES["etcd"][2].split("-")[0])


def etcd_image() -> Image:
    """etcd and etcdctl of the release the tag names (3.6.6-0: v3.6.6) in /usr/local/bin, as
    upstream's etcd image has them (the aggregator test runs /usr/local/bin/etcd)."""
    name, tag = suite_name("etcd").rsplit(":", 1)
    build = etcd_build()

    def make_root(root: Path) -> dict:
        for program in ("etcd", "etcdctl"):
            copy_program(builds.ensure_built(build) / program, root / "usr/local/bin" / program)
        make_tmp(root)
        return {"org.opencontainers.image.version": tag, "io.kubelab.built-from": build.key}

    return Image(
        name=name,
        tag=tag,
        config={"Cmd": ["/usr/local/bin/etcd"], "Env": [lab_images.PATH_ENV]},
        recipe=[build.recipe()],
        make_root=make_root,
    )


# ------------------------------------------------------------------------------ jessie-dnsutils

DNSUTILS_PACKAGES = ["bind9-dnsutils"]  # dig, nslookup; sh, seq, getent are in minbase
DNSUTILS_NEEDS = ["usr/bin/dig", "usr/bin/nslookup", "usr/bin/getent", "usr/bin/seq", "bin/sh"]


def make_dnsutils_root(root: Path) -> dict:
    """Debian (12, not jessie) with dnsutils, and a CoreDNS at / as its Dockerfile adds one."""
    debian_root(root, DNSUTILS_PACKAGES)
    copy_program(builds.ensure_built(builds.coredns()) / "coredns", root / "coredns")
    missing = [rel for rel in DNSUTILS_NEEDS if not os.path.lexists(root / rel)]
    if missing:
        raise LabError(f"the jessie-dnsutils root lacks {', '.join(missing)}")
    version = lab_images.package_version(root, "bind9-dnsutils")
    return {"org.opencontainers.image.version": version, "debian.bind9-dnsutils.version": version}


def jessie_dnsutils_image() -> Image:
    name, tag = suite_name("jessie-dnsutils").rsplit(":", 1)
    return Image(
        name=name,
        tag=tag,
        config={"Cmd": ["bash"], "Env": [lab_images.PATH_ENV]},
        recipe=[
            DNSUTILS_PACKAGES,
            builds.coredns().recipe(),
            lab_images.NGINX_SOURCES,
            lab_images.NGINX_TRIM,
        ],
        make_root=make_dnsutils_root,
    )


# ------------------------------------------------------------------------------------ busybox

BUSYBOX_PACKAGE = "busybox-static"
# Debian's busybox ash (1.35 and trixie's 1.37 alike) drops from its environment the variables
# whose names are no shell identifiers, such as "data-1" or "1-data-1", which the ConfigMap and
# Secret tests give a pod through envFrom and read back with `sh -c env`
# (test/e2e/common/node/configmap.go: "should be consumable via the environment"). bash keeps
# them: the image's sh is Debian's static bash, every other applet busybox's.
SHELL_PACKAGE = "bash-static"
# Applets the conformance tests call (sh, sysctl, wget --post-data, ...), checked in the root.
BUSYBOX_NEEDS = ["sh", "sysctl", "wget", "nslookup", "cat", "sleep", "test", "hostname", "env"]


def busybox_applets(busybox: Path) -> list[str]:
    result = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise LabError(f"{busybox} --list failed: {result.stderr.strip()}")
    return result.stdout.split()


def unpacked_package(package: str, scratch: Path) -> tuple[Path, str]:
    """Debian's ``package`` downloaded and unpacked under ``scratch``: its root, its version."""
    run("apt-get", "download", package, cwd=scratch, capture_output=True)
    (deb,) = scratch.glob(f"{package}_*.deb")
    run("dpkg-deb", "-x", str(deb), str(scratch / package))
    return scratch / package, deb.name.split("_")[1].replace("%3a", ":")


def make_busybox_root(root: Path) -> dict:
    """Debian's static busybox at /bin/busybox, every applet a link beside it (as the busybox
    image has them) but sh, which is Debian's static bash (SHELL_PACKAGE), a root and a nobody
    user, /tmp."""
    (root / "bin").mkdir()
    with tempfile.TemporaryDirectory(prefix="busybox-", dir=lab_images.WORK) as scratch:
        unpacked, version = unpacked_package(BUSYBOX_PACKAGE, Path(scratch))
        shutil.copyfile(unpacked / "bin/busybox", root / "bin/busybox")
        unpacked, shell_version = unpacked_package(SHELL_PACKAGE, Path(scratch))
        shutil.copyfile(unpacked / "bin/bash-static", root / "bin/bash")
    for program in ("busybox", "bash"):
        (root / "bin" / program).chmod(0o755)
    applets = busybox_applets(root / "bin/busybox")
    missing = [name for name in BUSYBOX_NEEDS if name not in applets]
    if missing:
        raise LabError(f"Debian's busybox lacks the applets {', '.join(missing)}")
    for name in applets:
        if name not in ("busybox", "sh", "bash"):
            (root / "bin" / name).symlink_to("busybox")
    (root / "bin/sh").symlink_to("bash")
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
    )
    (root / "etc/group").write_text("root:x:0:\nnobody:x:65534:\n")
    for directory in ("root", "home", "var", "usr"):
        (root / directory).mkdir()
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    return {
        "org.opencontainers.image.version": version,
        "debian.busybox-static.version": version,
        "debian.bash-static.version": shell_version,
    }


def busybox_image() -> Image:
    name, tag = suite_name("busybox").rsplit(":", 1)
    return Image(
        name=name,
        tag=tag,
        config={"Cmd": ["sh"], "Env": [lab_images.PATH_ENV]},
        recipe=[lab_images.SUITE, BUSYBOX_PACKAGE, SHELL_PACKAGE, BUSYBOX_NEEDS],
        make_root=make_busybox_root,
    )


# ------------------------------------------------------------------------------ pause, nginx


def pause_image() -> Image:
    """The lab's own pause program (lab_images.py) under the suite's pause name."""
    lab = lab_images.pause_image()
    name, tag = suite_name("pause").rsplit(":", 1)
    return Image(name=name, tag=tag, config=lab.config, recipe=lab.recipe, make_root=lab.make_root)


NGINX_DOCROOT = "usr/share/nginx/html"  # nginx's own image serves this (index.html)


def make_nginx_root(root: Path) -> dict:
    """lab_images.py's Debian nginx root, its default site serving /usr/share/nginx/html (where
    nginx-common puts index.html, and where the suite's tests look)."""
    labels = lab_images.make_nginx_root(root)
    site = root / "etc/nginx/sites-available/default"
    config = site.read_text()
    if "root /var/www/html;" not in config:
        raise LabError(f"{site} no longer says `root /var/www/html;`")
    site.write_text(config.replace("root /var/www/html;", f"root /{NGINX_DOCROOT};"))
    if not (root / NGINX_DOCROOT / "index.html").is_file():
        raise LabError(f"the nginx root lacks /{NGINX_DOCROOT}/index.html")
    return labels


def nginx_image() -> Image:
    lab = lab_images.nginx_image()
    name, tag = suite_name("nginx").rsplit(":", 1)
    return Image(
        name=name,
        tag=tag,
        config=lab.config,
        recipe=[lab.recipe, NGINX_DOCROOT],
        make_root=make_nginx_root,
    )


def conformance_images(names=tuple(SUITE_IMAGES)) -> list[Image]:
    """The images of SUITE_IMAGES that ``names`` names (every one by default), in that order."""
    unknown = set(names) - set(SUITE_IMAGES)
    if unknown:
        raise LabError(f"no conformance image is called {', '.join(sorted(unknown))}")
    makers = {
        "agnhost": lambda: agnhost_image(SUITE_IMAGES["agnhost"][2]),
        "agnhost-prev": lambda: agnhost_image(SUITE_IMAGES["agnhost-prev"][2]),
        "busybox": busybox_image,
        "nginx": nginx_image,
        "nonewprivs": nonewprivs_image,
        "jessie-dnsutils": jessie_dnsutils_image,
        "nautilus": nautilus_image,
        "sample-apiserver": sample_apiserver_image,
        "etcd": etcd_image,
        "pause": pause_image,
    }
    return [makers[name]() for name in SUITE_IMAGES if name in names]


# The images made from Debian's packages alone (no Go build): prebuild.py makes their roots in
# a thread of their own, beside the Go builds (mmdebstrap and apt mostly wait on the network).
DEBIAN_ONLY = ("busybox", "nginx")


def go_builds(names=tuple(SUITE_IMAGES), kube_version: str = KUBE_VERSION) -> list[builds.Build]:
    """The Go builds the images ``names`` names copy programs from (for prebuild.py's module
    downloads ahead), each once."""
    on_agnhost = {"agnhost", "agnhost-prev", "nautilus"} & set(names)
    found = [builds.agnhost(kube_version), builds.coredns()] if on_agnhost else []
    found += [builds.coredns()] if "jessie-dnsutils" in names else []
    found += [builds.nonewprivs(kube_version)] if "nonewprivs" in names else []
    found += [sample_apiserver_build()] if "sample-apiserver" in names else []
    found += [etcd_build()] if "etcd" in names else []
    return list({build.key: build for build in found}.values())


def ensure_images(names=tuple(SUITE_IMAGES)) -> dict[str, Path]:
    """Suite reference -> archive of each image ``names`` names (every one by default), built
    where not cached."""
    return {image.reference: lab_images.ensure_image(image) for image in conformance_images(names)}


def main() -> int:
    return lab_images.report("conformance images", ensure_images)


if __name__ == "__main__":
    sys.exit(main())
