"""The README documents exactly the settings the code has."""

import re

from fakehosts import REPO
from kubelab.defaults import settings_table

TABLE = re.compile(r"<!-- settings table:[^\n]*-->\n(.*?)\n<!-- end of settings table -->", re.S)


def test_readme_settings_table_matches_the_code():
    readme = (REPO / "README.md").read_text()
    assert TABLE.search(readme)[1] == settings_table(), "run: make docs"


def test_readme_quick_start_commands_exist_in_the_makefile():
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test", "lab-up", "lab-down", "lab-ssh", "bench"):
        assert re.search(rf"^{target}:", makefile, re.M), target
