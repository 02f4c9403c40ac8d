"""Sphinx hooks for the book's website (loaded through _config.yml's local_extensions).

- Jupyter Book 1 registers some inline scripts twice (the ones that define
  ``togglebuttonSelector`` and ``THEBE_JS_URL``). A second ``const`` declaration of
  the same name is a SyntaxError that the browser reports on every page, so each page
  keeps only the first copy of any script or stylesheet.
- YAML has no tuples, but Sphinx matches ``nitpick_ignore`` entries as
  ``(type, target)`` tuples: the ``[type, target]`` lists of _config.yml are
  converted.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def nitpick_ignore_as_tuples(app: Sphinx, config: Any) -> None:
    config.nitpick_ignore = [tuple(entry) for entry in config.nitpick_ignore]


def _first_copies(assets: list[Any]) -> list[Any]:
    """The assets without repeats. The file name and attributes (an inline script's
    body among them) decide what is a repeat; an inline script's file name is None
    or "", depending on how it was registered, so the two count as one."""
    seen: set[Any] = set()
    kept = []
    for asset in assets:
        key = (getattr(asset, "filename", asset) or "",
               tuple(sorted(getattr(asset, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(asset)
    return kept


def drop_duplicate_assets(app: Sphinx, pagename: str, templatename: str,
                          context: dict[str, Any], doctree: Any) -> None:
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = _first_copies(context[key])


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", nitpick_ignore_as_tuples)
    # Late, so that the scripts other handlers add are seen too.
    app.connect("html-page-context", drop_duplicate_assets, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
