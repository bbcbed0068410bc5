"""The lab's cold builds, without a lab: the conformance subset's images (what `make test`
builds and loads), the module downloads ahead of the compiles (prebuild.py), a cached build
looked up without the build lock, and the upgrade scenario's older release built in the
background during the e2e."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lab"))
import builds  # noqa: E402
import conformance_images  # noqa: E402
import conformance_subset  # noqa: E402
import pipeline  # noqa: E402
import prebuild  # noqa: E402
import upgrade_scenario  # noqa: E402
from util import LabError  # noqa: E402


def no_module_proxy(monkeypatch):
    """What builds.py would ask the Go module proxy, answered here."""
    monkeypatch.setattr(builds, "release_time", lambda module, version: "2026-08-20T15:16:14Z")
    monkeypatch.setattr(builds, "agnhost_version", lambda version: "2.59")
    monkeypatch.setattr(builds, "origin", lambda module, version: {"Hash": "0" * 40})
    monkeypatch.setattr(builds, "required_version", lambda module, requirer, version: "v2.27.2")
    info = {"Origin": {"Hash": "1" * 40}, "Time": "2025-06-25T10:00:00Z"}
    monkeypatch.setattr(builds, "go_json", lambda args, cwd: info)


def test_the_subset_builds_and_loads_only_the_images_its_tests_run(monkeypatch):
    no_module_proxy(monkeypatch)
    built = [image.reference for image in conformance_images.conformance_images(("agnhost",))]
    assert built == ["lab.local/e2e-test-images/agnhost:2.59"]
    subset = conformance_images.conformance_images(conformance_subset.IMAGES)
    assert [image.reference for image in subset] == [
        "lab.local/e2e-test-images/agnhost:2.59",
        "lab.local/e2e-test-images/busybox:1.37.0-1",
        "lab.local/e2e-test-images/nginx:1.14-4",
        "lab.local/e2e-test-images/jessie-dnsutils:1.7",
        "lab.local/pause:3.10.1",
    ]
    # make conformance: all ten, as before
    assert len(conformance_images.conformance_images()) == len(conformance_images.SUITE_IMAGES)
    with pytest.raises(LabError, match="agnhost-next"):
        conformance_images.conformance_images(("agnhost-next",))


def test_the_go_builds_of_the_images_are_those_their_roots_copy(monkeypatch):
    no_module_proxy(monkeypatch)
    subset = conformance_images.go_builds(conformance_subset.IMAGES)
    assert [build.key for build in subset] == ["agnhost-v1.35.8", "coredns-v1.13.1"]
    every = {build.key for build in conformance_images.go_builds()}
    assert every == {
        "agnhost-v1.35.8",
        "coredns-v1.13.1",
        "nonewprivs-v1.35.8",
        "sample-apiserver-v0.29.2",
        "etcd-v3.6.6",
    }
    assert conformance_images.go_builds(("busybox", "nginx", "pause")) == []
    assert set(conformance_images.DEBIAN_ONLY) <= set(conformance_subset.IMAGES)


def test_prebuild_builds_the_pinned_release_and_the_subset_not_the_older_release(monkeypatch):
    no_module_proxy(monkeypatch)
    monkeypatch.delenv(builds.EXTRA_KUBE_ENV, raising=False)
    keys = [build.key for build in prebuild.every_build("v1.35.8")]
    assert keys[0] == "kubernetes-v1.35.8" and len(keys) == len(set(keys))
    assert {"kubernetes-e2e-v1.35.8", "ginkgo-v2.27.2", "agnhost-v1.35.8"} <= set(keys)
    assert not [key for key in keys if key.startswith("kubernetes-v1.34")]
    assert not {"sample-apiserver-v0.29.2", "etcd-v3.6.6", "nonewprivs-v1.35.8"} & set(keys)


def test_the_download_ahead_loads_every_package_the_build_compiles(monkeypatch):
    no_module_proxy(monkeypatch)
    e2e = builds.kubernetes_e2e("v1.35.8")
    assert builds.fetch_command(e2e) == [
        "list",
        "-deps",
        "-e",
        "-test",
        "-tags",
        "selinux,notest,grpcnotrace",
        "k8s.io/kubernetes/test/e2e",
    ]
    etcd = builds.fetch_command(builds.etcd("v3.6.14"))
    assert "-test" not in etcd and "-tags" not in etcd
    assert etcd[-2:] == ["go.etcd.io/etcd/etcdctl/v3", "go.etcd.io/etcd/server/v3"]


def test_the_download_ahead_tidies_like_the_build_in_a_directory_of_its_own(monkeypatch, tmp_path):
    monkeypatch.setattr(builds, "CACHE", tmp_path)
    calls = []

    def go(args, cwd, env=None, capture=False, timeout=0):
        calls.append((args[:2], (cwd / "go.mod").read_text(), env))

    monkeypatch.setattr(builds, "go", go)
    flannel = builds.flannel("v0.28.9")  # tidy=False, cgo
    assert builds.prefetch(flannel) >= 0
    assert [args for args, _, _ in calls] == [["list", "-deps"]]
    assert calls[0][1] == flannel.go_mod() and calls[0][2]["CGO_ENABLED"] == "1"
    calls.clear()
    builds.prefetch(builds.runc("v1.3.6"))  # tidied before the build
    assert [args for args, _, _ in calls] == [["mod", "tidy"], ["list", "-deps"]]
    assert list((tmp_path / "work").iterdir()) == []  # its work directory removed


def cached(build: builds.Build) -> None:
    out = builds.output_dir(build)
    out.mkdir(parents=True)
    (out / "recipe.sha256").write_text(build.recipe() + "\n")


def test_a_cached_build_is_found_without_the_build_lock(monkeypatch, tmp_path):
    monkeypatch.setattr(builds, "CACHE", tmp_path)
    runc = builds.runc("v1.3.6")
    cached(runc)

    def no_lock(*args):
        raise AssertionError("the lock was taken")

    monkeypatch.setattr(builds.fcntl, "flock", no_lock)
    assert builds.ensure_built(runc) == builds.output_dir(runc)
    assert builds.prefetch(runc) == 0.0


def older_release(monkeypatch, tmp_path, built: bool):
    no_module_proxy(monkeypatch)
    monkeypatch.setattr(builds, "CACHE", tmp_path)
    monkeypatch.setenv(builds.EXTRA_KUBE_ENV, "")  # restored afterwards, whatever start sets
    monkeypatch.delenv(builds.EXTRA_KUBE_ENV)
    if built:
        cached(builds.kubernetes(upgrade_scenario.OLDER_RELEASE))
    return upgrade_scenario.OlderRelease()


def test_a_cached_older_release_is_served_from_the_first_lab_up(monkeypatch, tmp_path):
    older = older_release(monkeypatch, tmp_path, built=True)
    assert "cached" in older.start() and older.process is None
    assert os.environ[builds.EXTRA_KUBE_ENV] == upgrade_scenario.OLDER_RELEASE
    assert "since lab up" in older.served()


def test_an_older_release_named_by_hand_is_left_to_lab_up(monkeypatch, tmp_path):
    older = older_release(monkeypatch, tmp_path, built=False)
    monkeypatch.setenv(builds.EXTRA_KUBE_ENV, "v1.34.x")
    assert builds.EXTRA_KUBE_ENV in older.start() and older.process is None
    assert os.environ[builds.EXTRA_KUBE_ENV] == "v1.34.x"


def test_the_older_release_is_served_once_its_background_build_is_done(monkeypatch, tmp_path):
    older = older_release(monkeypatch, tmp_path, built=False)
    rebuilt = []
    monkeypatch.setattr(upgrade_scenario.mirror, "build", lambda root: rebuilt.append(root))
    older.process = subprocess.Popen(["true"], start_new_session=True)
    assert builds.EXTRA_KUBE_ENV not in os.environ  # not before it is built
    assert "the lab's mirror serves it" in older.served()
    assert rebuilt == [upgrade_scenario.MIRROR]
    assert os.environ[builds.EXTRA_KUBE_ENV] == upgrade_scenario.OLDER_RELEASE


def test_the_wait_for_the_older_release_is_bounded_and_ends_the_build(monkeypatch, tmp_path):
    older = older_release(monkeypatch, tmp_path, built=False)
    older.process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    with pytest.raises(pipeline.StepFailed, match="did not finish within 0.2 s"):
        older.served(timeout=0.2)
    assert older.process.poll() is not None  # ended, not left running
    assert builds.EXTRA_KUBE_ENV not in os.environ


def test_a_failed_background_build_fails_the_step_with_its_log(monkeypatch, tmp_path):
    older = older_release(monkeypatch, tmp_path, built=False)
    log = tmp_path / "older.log"
    log.write_text("go build failed: out of memory\n")
    monkeypatch.setattr(upgrade_scenario, "OLDER_BUILD_LOG", log)
    older.process = subprocess.Popen(["false"], start_new_session=True)
    with pytest.raises(pipeline.StepFailed, match="out of memory"):
        older.served()
    older.stop()  # nothing left to end


def test_prebuild_fetches_the_first_build_alone_then_the_others_during_the_compiles(monkeypatch):
    no_module_proxy(monkeypatch)
    plan = [builds.runc("v1.3.6"), builds.etcd("v3.6.14"), builds.flannel("v0.28.9")]
    events = []
    monkeypatch.setattr(prebuild, "install_host_packages", lambda: None)
    monkeypatch.setattr(prebuild, "every_build", lambda release: plan)
    monkeypatch.setattr(prebuild, "debian_images", lambda: ["busybox"])
    monkeypatch.setattr(prebuild.lab_images, "ensure_image", lambda i: events.append(("img", i)))
    monkeypatch.setattr(builds, "prefetch", lambda b: events.append(("fetch", b.key)) or 1.0)
    monkeypatch.setattr(builds, "ensure_built", lambda b: events.append(("build", b.key)))
    monkeypatch.setattr(prebuild.mirror, "ensure_builds", lambda: events.append(("mirror",)))
    monkeypatch.setattr(prebuild.lab_images, "ensure_images", lambda: events.append(("lab",)))
    monkeypatch.setattr(prebuild.conformance, "prepare", lambda images: events.append(images))
    prebuild.prebuild()
    fetched = [key for kind, *key in events if kind == "fetch"]
    assert fetched[0] == ["runc-v1.3.6"] and len(fetched) == 3
    # the first build's downloads come first, alone, and before its compile
    assert events.index(("fetch", "runc-v1.3.6")) < events.index(("build", "runc-v1.3.6"))
    assert [e[1] for e in events if e[0] == "build"] == [b.key for b in plan]
    assert ("img", "busybox") in events
    assert events[-3:] == [("mirror",), ("lab",), conformance_subset.IMAGES]
