#!/usr/bin/env python3
"""Everything `make e2e` builds, built ahead: `make test` runs this beside the unit tests, so
that on a fresh machine the Go builds (on both cores) overlap the unit tests (on one). The
cluster's programs at the pinned release and at the upgrade scenario's older one, the lab's
images, e2e.test, ginkgo and the conformance suite's images. Each is cached per version: a
warm run builds nothing and takes a second."""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import builds  # noqa: E402
import conformance  # noqa: E402
import lab_images  # noqa: E402
import mirror  # noqa: E402
import pipeline  # noqa: E402
import upgrade_scenario  # noqa: E402
from host import install_host_packages  # noqa: E402
from util import LabError  # noqa: E402


def main() -> int:
    if not pipeline.require_root("the lab's builds"):
        return 0
    os.environ.setdefault(builds.EXTRA_KUBE_ENV, upgrade_scenario.OLDER_RELEASE)
    started = time.monotonic()
    try:
        install_host_packages()
        mirror.ensure_builds()
        lab_images.ensure_images()
        conformance.prepare()
    except LabError as error:
        print(f"prebuild: {error}", file=sys.stderr)
        return 1
    print(f"prebuild: every build of make e2e in place ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
