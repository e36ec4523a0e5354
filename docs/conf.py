"""Sphinx configuration for micrec's documentation site.

Sphinx (not MkDocs) because the docstrings are numpydoc, as sounddevice's and soundfile's are;
autodoc reads them from the code, MyST reads the Markdown pages that live beside this file (the
same files GitHub shows), ``-W`` turns every warning into an error, and sphinx.ext.doctest runs
the examples of the pages and docstrings against micrec.vmic.VirtualMicrophone.
"""

from __future__ import annotations

import re
from pathlib import Path

from sphinx.application import Sphinx

import micrec

HERE = Path(__file__).parent

project = "micrec"
author = "micrec contributors"
copyright = "micrec contributors"
release = micrec.__version__
version = release

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "images/README.md", "Thumbs.db", ".DS_Store"]
html_theme = "furo"
html_title = f"micrec {release}"
html_static_path: list[str] = []

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_default_options = {"members": True, "show-inheritance": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# The examples run against a private PulseAudio server with a virtual microphone that hears a
# 440 Hz tone (docs/doctest_setup.py, shown on the quickstart page), in a scratch directory.
doctest_global_setup = (HERE / "doctest_setup.py").read_text()
doctest_global_cleanup = "_docs_vm.deactivate(); _docs_vm.stop(); os.chdir(_docs_cwd)"
doctest_test_doctest_blocks = "default"


def _every_page_in_the_guide(app: Sphinx, docname: str, source: list[str]) -> None:
    """Append to the guide's table of contents every top-level page that index.md does not list.

    A page added to docs/ then appears in the navigation at once instead of failing the build
    (Sphinx warns about a page outside every table of contents, and ``-W`` makes that an error).
    """
    if docname != root_doc:
        return
    text = source[0]
    listed = set(re.findall(r"^([\w./-]+)$", text, flags=re.MULTILINE))
    found = app.env.found_docs
    unlisted = sorted(d for d in found if "/" not in d and d != root_doc and d not in listed)
    if unlisted:
        guide = re.search(r"(:caption: Guide\n.*?)(\n```)", text, flags=re.DOTALL)
        if guide is not None:
            source[0] = text[:guide.end(1)] + "".join(f"\n{d}" for d in unlisted) + text[guide.end(1):]


def setup(app: Sphinx) -> None:
    app.connect("source-read", _every_page_in_the_guide)
