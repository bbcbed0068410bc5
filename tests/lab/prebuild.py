#!/usr/bin/env python3
"""What `make e2e` builds, built ahead: `make test` runs this beside the unit tests, so that
on a fresh machine the Go builds (on both cores) overlap the unit tests (on one). The
cluster's programs at the pinned release, the lab's images, e2e.test, ginkgo and the images of
the conformance subset `make test` runs (conformance_subset.IMAGES; `make conformance` builds
the others). The older Kubernetes release of the upgrade scenario is not built here: e2e.py
builds it in the background while its first steps run (upgrade_scenario.OlderRelease). Each
is cached per version: a warm run builds nothing and takes a second.

On a cold cache the Go module downloads of every build start at once, in threads beside the
compiles (builds.prefetch: network only), and the images made from Debian's packages alone
are made in a thread of their own, so the compiles, one after the other, seldom wait on the
network.
"""

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import builds  # noqa: E402
import conformance  # noqa: E402
import conformance_images  # noqa: E402
import conformance_subset  # noqa: E402
import lab_images  # noqa: E402
import mirror  # noqa: E402
import pipeline  # noqa: E402
from host import install_host_packages  # noqa: E402
from util import LabError, log  # noqa: E402

FETCHERS = 4  # module downloads at once (network-bound: they barely use the cores)


def every_build(release: str) -> list[builds.Build]:
    """Every Go build of prebuild, in the order it builds them, each once."""
    found = [build for _, build, _ in mirror.planned() + mirror.extra_planned()]
    found += [builds.coredns(), builds.metrics_server()]
    found += [builds.kubernetes_e2e(release), builds.ginkgo(release)]
    found += conformance_images.go_builds(conformance_subset.IMAGES, release)
    return list({build.key: build for build in found}.values())


def fetch(build: builds.Build) -> None:
    """builds.prefetch, its failure only logged (the build itself then says what is wrong)."""
    try:
        seconds = builds.prefetch(build)
    except LabError as error:
        log(f"prefetch of {build.key} failed (its build will download): {error}")
        return
    if seconds:
        log(f"modules of {build.key} downloaded ({seconds:.0f} s)")


def debian_images() -> list[lab_images.Image]:
    """The images made from Debian's packages alone, the lab's and the subset's."""
    subset = [n for n in conformance_images.DEBIAN_ONLY if n in conformance_subset.IMAGES]
    return [lab_images.nginx_image(), *conformance_images.conformance_images(subset)]


class Background(threading.Thread):
    """Runs ``work`` in a thread; ``result()`` joins it and raises what it raised."""

    def __init__(self, name: str, work):
        super().__init__(name=name, daemon=True)
        self.work, self.error = work, None

    def run(self) -> None:
        try:
            self.work()
        except Exception as error:  # re-raised in result()
            self.error = error

    def result(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def prebuild() -> None:
    install_host_packages()
    release = mirror.versions().kube_version
    plan = every_build(release)
    images = Background(
        "debian-images", lambda: [lab_images.ensure_image(i) for i in debian_images()]
    )
    images.start()
    fetchers = ThreadPoolExecutor(FETCHERS, thread_name_prefix="fetch")
    try:
        # the first compile's modules alone (the others' would share the network with them),
        # then all the others' at once, during that compile
        fetch(plan[0])
        for build in plan[1:]:
            fetchers.submit(fetch, build)
        for build in plan:  # the compiles, one at a time (each uses both cores)
            builds.ensure_built(build)
    finally:
        fetchers.shutdown(cancel_futures=True)  # on a failure, no new download starts
        images.join()
    images.result()
    mirror.ensure_builds()
    lab_images.ensure_images()
    conformance.prepare(conformance_subset.IMAGES)


def main() -> int:
    if not pipeline.require_root("the lab's builds"):
        return 0
    started = time.monotonic()
    try:
        prebuild()
    except LabError as error:
        print(f"prebuild: {error}", file=sys.stderr)
        return 1
    extra = os.environ.get(builds.EXTRA_KUBE_ENV, "")
    print(
        f"prebuild: every build of make e2e in place ({time.monotonic() - started:.0f} s)"
        + (f", and {builds.EXTRA_KUBE_ENV}={extra}" if extra else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
