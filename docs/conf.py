"""Sphinx configuration for the horae documentation (MyST Markdown + furo)."""

from __future__ import annotations

import importlib.metadata

project = "horae"
author = "the horae developers"
copyright = "2026, the horae developers"
release = importlib.metadata.version("horae")
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Types go into the documented "Args:" entries; without this, classes whose __init__ is
# annotated get a second, undocumented parameter list.
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False

html_theme = "furo"
html_title = "horae"
exclude_patterns = ["_build"]
