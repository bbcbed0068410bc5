"""make docs: write the settings table (defaults.settings_table, from each setting's declaration)
into README.md."""

from fakehosts import REPO
from test_docs import TABLE

from kubelab.settings.defaults import settings_table

readme = REPO / "README.md"
text = readme.read_text()
start, end = TABLE.search(text).span(1)
readme.write_text(text[:start] + settings_table() + text[end:])
