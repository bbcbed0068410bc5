"""The lab's add-on images: group_data names the images the lab builds and the archives the
lab's mirror serves them in."""

import runpy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lab"))
import builds  # noqa: E402
import lab_images  # noqa: E402
import mirror  # noqa: E402


def test_group_data_loads_the_add_on_images_the_lab_builds():
    data = runpy.run_path(str(REPO / "group_data" / "all.py"))
    for setting, name, version in (
        ("dns_image", "coredns", builds.COREDNS_VERSION),
        ("metrics_server_image", "metrics-server", builds.METRICS_SERVER_VERSION),
    ):
        image = lab_images.Image(f"lab.local/{name}", version, {}, [], make_root=None)
        assert data[setting] == image.reference
        served = f"{data['artifact_mirror']}/{mirror.IMAGES}/{image.archive.name}"
        assert data["image_archives"][image.reference] == served
