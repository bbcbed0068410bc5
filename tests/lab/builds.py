"""The real upstream programs, built here from their published Go modules.

Upstream's release downloads cannot be reached from this box, the Go module proxy can. Each
component gets a small wrapper module of the lab's own (``require`` the upstream module at
the pinned release, ``tool`` lines naming its main packages so ``go mod tidy`` keeps them),
built with the flags upstream's release build uses, version stamps included. Results are
cached per component and version in $LAB_BUILD_CACHE (default /var/cache/kubelab-lab, kept
by `purge`): a warm run builds nothing.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from util import LabError, log, write

CACHE = Path(os.environ.get("LAB_BUILD_CACHE", "/var/cache/kubelab-lab"))
GO_ENV = {
    "GOMODCACHE": str(CACHE / "go" / "mod"),
    "GOCACHE": str(CACHE / "go" / "build"),
    "GOTOOLCHAIN": "local",  # the machine's Go; never download another
    "GOFLAGS": "-mod=mod -buildvcs=false",
}
BUILD_TIMEOUT = 3600  # one component, cold (Kubernetes takes the longest)
FETCH_TIMEOUT = 900  # one go command of a download ahead (prefetch): the longest took 71 s

# k8s.io/kubernetes requires each of these at v0.0.0 and replaces it with its staging
# directory; the wrapper points each at its published twin, v0.<minor>.<patch>.
KUBE_STAGING = [
    "api",
    "apiextensions-apiserver",
    "apimachinery",
    "apiserver",
    "cli-runtime",
    "client-go",
    "cloud-provider",
    "cluster-bootstrap",
    "code-generator",
    "component-base",
    "component-helpers",
    "controller-manager",
    "cri-api",
    "cri-client",
    "csi-translation-lib",
    "dynamic-resource-allocation",
    "endpointslice",
    "externaljwt",
    "kms",
    "kube-aggregator",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "metrics",
    "mount-utils",
    "pod-security-admission",
    "sample-apiserver",
    "sample-cli-plugin",
    "sample-controller",
]
KUBE_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)


@dataclass(frozen=True)
class Build:
    component: str
    version: str
    modules: tuple  # the upstream modules required, each at ``version``
    binaries: dict  # output file name -> main package
    replace: dict = field(default_factory=dict)
    cgo: bool = False
    tags: str = ""
    ldflags: str = ""
    go_lines: str = "go 1.25.0"
    tidy: bool = True
    env: dict = field(default_factory=dict)  # extra environment of the go commands
    test: bool = False  # ``go test -c`` of each package (a test binary) instead of go build

    @property
    def key(self) -> str:
        return f"{self.component}-{self.version}"

    def go_mod(self) -> str:
        lines = [f"module kubelab.lab/build/{self.component}", "", self.go_lines, ""]
        lines += [f"require {module} {self.version}" for module in self.modules]
        if not self.test:  # tool lines name main packages only
            lines += [""] + [f"tool {p}" for p in sorted(set(self.binaries.values()))]
        if self.replace:
            lines += ["", "replace ("]
            lines += [f"\t{old} => {new}" for old, new in sorted(self.replace.items())]
            lines.append(")")
        return "\n".join(lines) + "\n"

    def recipe(self) -> str:
        flags = [self.cgo, self.tags, self.ldflags, sorted(self.binaries.items()), self.tidy]
        if self.test:
            flags.append("test")
        flags.append(sorted(self.env.items()))
        return hashlib.sha256(json.dumps([self.go_mod(), flags]).encode()).hexdigest()


def kube_version_flags(version: str, build_date: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "archive",  # built from the module archive, not a git tree
        "buildDate": build_date,
    }
    packages = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    return " ".join(f"-X {p}.{k}={v}" for p in packages for k, v in values.items())


# k8s.io/kubernetes' go.mod per minor: its go line and godebug default (they act only in the
# main module, so the wrapper repeats them). Read from the proxy's .mod of each release.
KUBE_GO = {"1.34": "1.24", "1.35": "1.25"}
# Extra Kubernetes releases the lab builds and serves besides the pinned one (the upgrade
# scenario, tests/lab/upgrade_scenario.py): comma-separated tags, exact (v1.34.4) or a minor's
# newest patch the Go module proxy lists (v1.34.x).
EXTRA_KUBE_ENV = "LAB_EXTRA_KUBE_VERSIONS"


def kube_go_lines(version: str) -> str:
    minor = ".".join(version.lstrip("v").split(".")[:2])
    go = KUBE_GO.get(minor)
    if go is None:
        raise LabError(
            f"the lab knows no go line for Kubernetes {minor} (KUBE_GO in tests/lab/builds.py: "
            "add the `go` and `godebug default` of its k8s.io/kubernetes go.mod)"
        )
    return f"go {go}.0\n\ngodebug default=go{go}"


def newest_patch(minor_pattern: str, module: str = "k8s.io/kubernetes") -> str:
    """The newest release of ``v<major>.<minor>.x`` the Go module proxy lists for ``module``
    (``go list -m -versions``; pre-releases left out)."""
    prefix = minor_pattern.removesuffix("x")
    result = go(["list", "-m", "-versions", module], Path("/"), capture=True, timeout=120)
    listed = result.stdout.split()[1:]
    patches = [v for v in listed if v.startswith(prefix) and v[len(prefix) :].isdigit()]
    if not patches:
        raise LabError(f"the Go module proxy lists no {minor_pattern} of {module}")
    return max(patches, key=lambda v: int(v[len(prefix) :]))


def extra_kube_versions(value: str | None = None) -> list[str]:
    """The extra Kubernetes releases ``LAB_EXTRA_KUBE_VERSIONS`` (or ``value``) names, resolved
    (``v1.34.x`` -> the newest v1.34 patch the proxy lists)."""
    value = os.environ.get(EXTRA_KUBE_ENV, "") if value is None else value
    found = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if not item.startswith("v") or item.count(".") != 2:
            raise LabError(f"{EXTRA_KUBE_ENV}: {item!r} is not a release like v1.34.4 or v1.34.x")
        found.append(newest_patch(item) if item.endswith(".x") else item)
    return list(dict.fromkeys(found))


def kubernetes(version: str) -> Build:
    staging = "v0." + version.split(".", 1)[1]
    return Build(
        component="kubernetes",
        version=version,
        modules=("k8s.io/kubernetes",),
        binaries={name: f"k8s.io/kubernetes/cmd/{name}" for name in KUBE_COMMANDS},
        replace={f"k8s.io/{name}": f"k8s.io/{name} {staging}" for name in KUBE_STAGING},
        tags="selinux,notest",
        ldflags=kube_version_flags(version, release_time("k8s.io/kubernetes", version)),
        go_lines=kube_go_lines(version),
    )


# The conformance suite (tests/lab/conformance.py): its test binary, its runner and its main
# test image, from the same k8s.io/kubernetes module and wrapper as the kube binaries.
E2E_TAGS = "selinux,notest,grpcnotrace"  # hack/lib/golang.sh's tags for test binaries


def kubernetes_e2e(version: str) -> Build:
    """``e2e.test``: ``go test -c`` of k8s.io/kubernetes/test/e2e, as hack/lib/golang.sh
    builds test binaries (-trimpath, the version stamp, its tags)."""
    kube = kubernetes(version)
    return Build(
        component="kubernetes-e2e",
        version=version,
        modules=kube.modules,
        binaries={"e2e.test": "k8s.io/kubernetes/test/e2e"},
        replace=kube.replace,
        tags=E2E_TAGS,
        ldflags=kube.ldflags,
        go_lines=kube.go_lines,
        tidy=False,  # tidy keeps no test-only imports; -mod=mod resolves them from the graph
        test=True,
    )


def required_version(module: str, requirer: str, version: str) -> str:
    """The version of ``module`` that ``requirer@version``'s go.mod requires."""
    info = go_json(["mod", "download", "-json", f"{requirer}@{version}"], Path("/"))
    return module_requirement(Path(info["GoMod"]).read_text(), module, requirer)


def module_requirement(go_mod: str, module: str, requirer: str = "the go.mod") -> str:
    for line in go_mod.splitlines():
        words = line.strip().removeprefix("require").split()
        if len(words) >= 2 and words[0] == module:
            return words[1]
    raise LabError(f"{requirer} requires no {module}")


GINKGO = "github.com/onsi/ginkgo/v2"


def ginkgo(kube_version: str) -> Build:
    """The ginkgo CLI at the version k8s.io/kubernetes requires (the suite's own library)."""
    version = required_version(GINKGO, "k8s.io/kubernetes", kube_version)
    return Build(
        component="ginkgo",
        version=version,
        modules=(GINKGO,),
        binaries={"ginkgo": f"{GINKGO}/ginkgo"},
    )


def agnhost_version(kube_version: str) -> str:
    """test/images/agnhost/VERSION in the k8s.io/kubernetes module (what its image is tagged)."""
    info = go_json(["mod", "download", "-json", f"k8s.io/kubernetes@{kube_version}"], Path("/"))
    return (Path(info["Dir"]) / "test/images/agnhost/VERSION").read_text().strip()


def kube_module_program(component: str, kube_version: str, binaries: dict, ldflags="") -> Build:
    """Main packages of the k8s.io/kubernetes module (test/images/...) through the kube
    wrapper, built as test/images/image-util.sh does (CGO_ENABLED=0, its -X flags)."""
    kube = kubernetes(kube_version)
    return Build(
        component=component,
        version=kube_version,
        modules=kube.modules,
        binaries=binaries,
        replace=kube.replace,
        ldflags=ldflags,
        go_lines=kube.go_lines,
        tidy=False,
    )


def agnhost(kube_version: str) -> Build:
    """agnhost, stamped as its Makefile does (``-X main.Version=$(cat VERSION)``)."""
    stamp = f"-X main.Version={agnhost_version(kube_version)}"
    binaries = {"agnhost": "k8s.io/kubernetes/test/images/agnhost"}
    return kube_module_program("agnhost", kube_version, binaries, stamp)


def nonewprivs(kube_version: str) -> Build:
    """test/images/nonewprivs' nnp (prints its effective uid; no version stamp)."""
    binaries = {"nnp": "k8s.io/kubernetes/test/images/nonewprivs"}
    return kube_module_program("nonewprivs", kube_version, binaries)


def sample_apiserver(version: str) -> Build:
    """k8s.io/sample-apiserver at ``version``, as test/images/sample-apiserver's Makefile
    builds it (``go install .`` at that tag, CGO_ENABLED=0, no stamp)."""
    return Build(
        component="sample-apiserver",
        version=version,
        modules=("k8s.io/sample-apiserver",),
        binaries={"sample-apiserver": "k8s.io/sample-apiserver"},
    )


def etcd(version: str) -> Build:
    return Build(
        component="etcd",
        version=version,
        modules=("go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/etcdctl/v3"),
        binaries={"etcd": "go.etcd.io/etcd/server/v3", "etcdctl": "go.etcd.io/etcd/etcdctl/v3"},
    )


TENCENT_VPC = "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc"


def flannel(version: str) -> Build:
    return Build(
        component="flannel",
        version=version,
        modules=("github.com/flannel-io/flannel",),
        binaries={"flanneld": "github.com/flannel-io/flannel"},
        # The proxy serves no release of this SDK module near the one flannel requires
        # (v1.3.149) but v1.1.0, which the checksum database does not list; only flannel's
        # tencentvpc backend (not used here) links it.
        replace={TENCENT_VPC: f"{TENCENT_VPC} v1.1.0"},
        env={"GONOSUMDB": TENCENT_VPC},
        tidy=False,  # tidy wants modules of flannel's tests the proxy does not serve
        cgo=True,  # the UDP backend's C proxy (amd64)
        ldflags=f"-X github.com/flannel-io/flannel/pkg/version.Version={version} "
        '-extldflags "-static"',
    )


def cni_plugins(version: str) -> Build:
    base = "github.com/containernetworking/plugins/plugins"
    return Build(
        component="cni-plugins",
        version=version,
        modules=("github.com/containernetworking/plugins",),
        binaries={
            "bridge": f"{base}/main/bridge",
            "loopback": f"{base}/main/loopback",
            "host-local": f"{base}/ipam/host-local",
            "portmap": f"{base}/meta/portmap",
        },
        ldflags="-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion="
        f"{version}",
    )


# github.com/flannel-io/cni-plugin is refused by the module proxy here (every version). The
# flannel CNI plugin lived in containernetworking/plugins until v0.9.1, and flannel-io's
# repository continues that code: the lab builds that last in-tree release.
FLANNEL_CNI_ANCESTOR = "v0.9.1"


def flannel_cni_plugin(served_as: str) -> Build:
    return Build(
        component="flannel-cni-plugin",
        version=FLANNEL_CNI_ANCESTOR,
        modules=("github.com/containernetworking/plugins",),
        binaries={"flannel": "github.com/containernetworking/plugins/plugins/meta/flannel"},
        ldflags="-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion="
        f"containernetworking/plugins-{FLANNEL_CNI_ANCESTOR}(served-as-{served_as})",
    )


def containerd(version: str) -> Build:
    package = "github.com/containerd/containerd/v2"
    stamp = f"-X {package}/version.Version={version} -X {package}/version.Package={package}"
    return Build(
        component="containerd",
        version=version,
        modules=(package,),
        binaries={
            "containerd": f"{package}/cmd/containerd",
            "containerd-shim-runc-v2": f"{package}/cmd/containerd-shim-runc-v2",
            "ctr": f"{package}/cmd/ctr",
        },
        tags="urfave_cli_no_docs",
        ldflags=stamp,
    )


def runc(version: str) -> Build:
    return Build(
        component="runc",
        version=version,
        modules=("github.com/opencontainers/runc",),
        binaries={"runc": "github.com/opencontainers/runc"},
        cgo=True,  # libcontainer/nsenter is C; seccomp through libseccomp
        tags="seccomp urfave_cli_no_docs netgo osusergo",
        ldflags='-extldflags "-static"',
    )


# The cluster add-ons (kubelab's dns_image and metrics_server_image): the releases the lab
# builds, and the image tags group_data/all.py names.
COREDNS_VERSION = "v1.13.1"  # what kubeadm v1.35 pins
METRICS_SERVER_VERSION = "v0.8.0"


def coredns(version: str = COREDNS_VERSION) -> Build:
    module = "github.com/coredns/coredns"
    # upstream's Makefile: CGO_ENABLED=0, -X coremain.GitCommit=$(git describe --always)
    commit = origin(module, version)["Hash"][:7]
    return Build(
        component="coredns",
        version=version,
        modules=(module,),
        binaries={"coredns": module},
        ldflags=f"-X {module}/coremain.GitCommit={commit}",
        go_lines="go 1.24.0",  # its go.mod's: the same language and godebug defaults
    )


def metrics_server(version: str = METRICS_SERVER_VERSION) -> Build:
    module = "sigs.k8s.io/metrics-server"
    # upstream's Makefile stamps client-go's version package (gitVersion, gitCommit, buildDate)
    info = go_json(["list", "-m", "-json", f"{module}@{version}"], Path("/"))
    stamps = {
        "gitVersion": version,
        "gitCommit": info["Origin"]["Hash"],
        "buildDate": info["Time"],
    }
    return Build(
        component="metrics-server",
        version=version,
        modules=(module,),
        binaries={"metrics-server": f"{module}/cmd/metrics-server"},
        ldflags=" ".join(f"-X k8s.io/client-go/pkg/version.{k}={v}" for k, v in stamps.items()),
        go_lines="go 1.24.4",  # its go.mod's
    )


def origin(module: str, version: str) -> dict:
    """Where the proxy says ``module@version`` comes from (VCS, URL, Hash, Ref)."""
    return go_json(["list", "-m", "-json", f"{module}@{version}"], Path("/"))["Origin"]


def release_time(module: str, version: str) -> str:
    """When upstream tagged ``module@version`` (the proxy's record), as the build date."""
    info = go_json(["list", "-m", "-json", f"{module}@{version}"], Path("/"))
    return info["Time"]


def go_json(args: list[str], cwd: Path) -> dict:
    result = go(args, cwd, capture=True, timeout=120)
    return json.loads(result.stdout)


def go(args: list[str], cwd: Path, env=None, capture=False, timeout=BUILD_TIMEOUT):
    environment = dict(os.environ, **GO_ENV, **(env or {}))
    try:
        result = subprocess.run(
            ["go", *args],
            cwd=cwd,
            env=environment,
            capture_output=capture,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise LabError("the lab builds upstream programs with Go: no `go` on PATH") from None
    except subprocess.TimeoutExpired:
        raise LabError(
            f"go {' '.join(args[:3])} did not finish in {timeout} s (in {cwd})"
        ) from None
    if result.returncode != 0:
        detail = (result.stderr or "")[-2000:] if capture else "see its output above"
        raise LabError(f"go {' '.join(args[:3])} failed in {cwd}: {detail}")
    return result


def output_dir(build: Build) -> Path:
    return CACHE / "artifacts" / build.key


def is_cached(build: Build) -> bool:
    stamp = output_dir(build) / "recipe.sha256"
    return stamp.exists() and stamp.read_text().strip() == build.recipe()


def ensure_built(build: Build) -> Path:
    """The directory holding ``build``'s binaries, built now unless cached. A cached build is
    looked up without the lock (its directory is swapped in whole), so that a build running
    in the background (e2e.py's older release) never holds up one that is done."""
    if is_cached(build):
        return output_dir(build)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time: they share work directories
        return build_locked(build)


def build_locked(build: Build) -> Path:
    out = output_dir(build)
    if is_cached(build):
        return out
    work = CACHE / "work" / build.component
    shutil.rmtree(work, ignore_errors=True)
    write(work / "go.mod", build.go_mod())
    started = time.monotonic()
    log(f"building {build.key} from Go modules (cold: minutes; cached afterwards)")
    if build.tidy:
        go(["mod", "tidy"], work, env=build.env)
    staging = out.with_name(out.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    env = {"CGO_ENABLED": "1" if build.cgo else "0", **build.env}
    for name, package in build.binaries.items():
        flags = [
            "-p",
            str(os.cpu_count() or 2),
            "-trimpath",
            "-ldflags",
            f"all=-s -w {build.ldflags}",
        ]
        if build.tags:
            flags += ["-tags", build.tags]
        # go test -c also vets the test package, with facts from every package it imports
        # (for e2e.test most of Kubernetes): a lint that leaves the binary as it is.
        command = ["test", "-c", "-vet=off"] if build.test else ["build"]
        go([*command, *flags, "-o", str(staging / name), package], work, env=env)
    write(staging / "recipe.sha256", build.recipe() + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    log(f"built {build.key} in {time.monotonic() - started:.0f} s")
    return out


def fetch_command(build: Build) -> list[str]:
    """``go list`` of every package ``build`` compiles (its tests' imports too for a test
    binary), with its tags: loads them all, so downloads every module zip the build needs,
    and compiles nothing."""
    command = ["list", "-deps", "-e"] + (["-test"] if build.test else [])
    if build.tags:
        command += ["-tags", build.tags]
    return command + sorted(set(build.binaries.values()))


def prefetch(build: Build) -> float:
    """Download the modules ``build`` needs into the module cache (shared, and safe for
    several go commands at once), in a work directory of its own: network only, so that many
    can run beside a compile. Nothing when the build is cached. Its wall time."""
    if is_cached(build):
        return 0.0
    started = time.monotonic()
    (CACHE / "work").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"fetch-{build.key}-", dir=CACHE / "work"))
    try:
        write(work / "go.mod", build.go_mod())
        if build.tidy:
            go(["mod", "tidy"], work, env=build.env, capture=True, timeout=FETCH_TIMEOUT)
        env = {"CGO_ENABLED": "1" if build.cgo else "0", **build.env}
        go(fetch_command(build), work, env=env, capture=True, timeout=FETCH_TIMEOUT)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return time.monotonic() - started
