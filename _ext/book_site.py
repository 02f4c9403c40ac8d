"""Sphinx hooks for the book's website (loaded through _config.yml's local_extensions).

- Jupyter Book 1 registers some inline scripts twice (the ones that define
  ``togglebuttonSelector`` and ``THEBE_JS_URL``). A second ``const`` declaration of
  the same name is a SyntaxError that the browser reports on every page, so each page
  keeps only the first copy of any script or stylesheet.
- YAML has no tuples, but Sphinx matches ``nitpick_ignore`` entries as
  ``(type, target)`` tuples: the ``[type, target]`` lists of _config.yml are
  converted.
- Four directives write the lists of book/minijax_and_jax.md from the code and the
  tests themselves (see their docstrings), so the page cannot drift from them. (The
  Preface's map of the book is written into the notebook itself, from _toc.yml, by
  scripts/run_chapters.py, so that it reads the same in Jupyter.)
- The API page shows the functions a module re-exports from another minijax module.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


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


# ---------------------------------------------------------------------------
# Generated parts of book/minijax_and_jax.md, so that the page says what is true of
# the minijax and the tests it is built with.

def _bullets(items: list[list[str]]) -> nodes.bullet_list:
    """A bullet list; each item is a list of pieces, alternately plain text and code
    (the first piece is plain text, possibly empty)."""
    bullets = nodes.bullet_list()
    for pieces in items:
        paragraph = nodes.paragraph()
        for i, piece in enumerate(pieces):
            if piece:
                paragraph += nodes.literal(piece, piece) if i % 2 else nodes.Text(piece)
        bullets += nodes.list_item("", paragraph)
    return bullets


def _code_list(names: list[str], separator: str = ", ") -> list[str]:
    """Pieces for ``_bullets`` naming several code items: "", a, ", ", b, ..."""
    pieces = [""]
    for i, name in enumerate(names):
        pieces += [separator, name] if i else [name]
    return pieces


def _import_both() -> tuple[Any, Any]:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import minijax
    return jax, minijax


def _lookup(root: Any, dotted: str) -> Any:
    obj = root
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


class MissingParameters(SphinxDirective):
    """For each function minijax exports under JAX's name, the parameters of JAX's
    function that minijax's does not take (methods such as ``custom_jvp.defjvp``
    included)."""

    def run(self) -> list[nodes.Node]:
        self.env.note_reread()  # the output depends on more than the page's source
        jax, minijax = _import_both()
        items = []
        for name in sorted(minijax.__all__):
            ours, theirs = getattr(minijax, name), getattr(jax, name, None)
            if theirs is None or inspect.ismodule(ours) or not callable(ours):
                continue
            pairs = [(name, ours, theirs)]
            if inspect.isclass(ours):
                pairs = [(name, ours.__init__, theirs.__init__)]
                pairs += [(f"{name}.{attr}", getattr(ours, attr), getattr(theirs, attr))
                          for attr in sorted(vars(ours)) if not attr.startswith("_")
                          and callable(getattr(ours, attr)) and hasattr(theirs, attr)]
            for label, mine, real in pairs:
                lacking = [p for p in _parameters(real) if p not in _parameters(mine)]
                if lacking:
                    items.append(["", label, ": no "] + _code_list(lacking)[1:])
        return [_bullets(items)]


def _parameters(fun: Any) -> list[str]:
    try:
        params = inspect.signature(fun).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.name != "self"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


class NotInMinijax(SphinxDirective):
    """A list of JAX features, one per line as ``jax.name: what it is``, showing only
    those that minijax (under the same name, ``minijax.`` for ``jax.``) does not have.
    A name that JAX itself lacks is a mistake in the page, reported as a warning."""

    has_content = True

    def run(self) -> list[nodes.Node]:
        self.env.note_reread()  # the output depends on more than the page's source
        jax, minijax = _import_both()
        items = []
        for line in self.content:
            if not line.strip():
                continue
            name, _, text = line.partition(":")
            name = name.strip()
            dotted = name.removeprefix("jax.")
            if _lookup(jax, dotted) is None:
                logger.warning("%s is not in JAX", name, location=self.get_location())
            elif _lookup(minijax, dotted) is None:
                items.append(["", name, f": {text.strip()}" if text.strip() else ""])
        return [_bullets(items)]


class KnownDifferences(SphinxDirective):
    """The reasons of the strict xfails in tests/: the differences from JAX that the
    tests know of, each with the test files that show it."""

    def run(self) -> list[nodes.Node]:
        self.env.note_reread()  # the output depends on more than the page's source
        tests = Path(self.env.srcdir) / "tests"
        files = sorted(tests.glob("*.py"))
        for path in files:
            self.env.note_dependency(str(path))
        shown: dict[str, set[str]] = {}
        for reason, test_file in known_differences(files):
            shown.setdefault(" ".join(reason.split()), set()).add(f"tests/{test_file}")
        items = [[f"{reason} ("] + _code_list(sorted(test_files))[1:] + [")"]
                 for reason, test_files in shown.items()]
        bullets = _bullets(items)
        return [bullets]


def known_differences(files: list[Path]) -> list[tuple[str, str]]:
    """(reason, file name) for each ``pytest.mark.xfail(strict=True, reason=...)``;
    a reason may be a string or a module-level string constant of any of the files."""
    trees = {path: ast.parse(path.read_text()) for path in files}
    constants: dict[str, Any] = {}
    for tree in trees.values():
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)):
                try:
                    constants[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    pass
    found = []
    for path, tree in trees.items():
        in_decorators = {id(inner) for function in ast.walk(tree)
                         if isinstance(function, ast.FunctionDef)
                         for decorator in function.decorator_list
                         for inner in ast.walk(decorator)}
        for test in ast.walk(tree):
            if not isinstance(test, (ast.FunctionDef, ast.Module)):
                continue
            # A test's own marks, or marks elsewhere (pytest.param(..., marks=...)).
            calls = [node for decorator in test.decorator_list for node in ast.walk(decorator)
                     ] if isinstance(test, ast.FunctionDef) else [
                node for node in ast.walk(test) if id(node) not in in_decorators]
            for call in calls:
                for reason in _strict_xfail_reasons(call, constants):
                    found.append((reason, path.name))
    return found


def _strict_xfail_reasons(call: ast.AST, constants: dict[str, Any]) -> list[str]:
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and call.func.attr == "xfail"):
        return []
    keywords = {k.arg: k.value for k in call.keywords}
    strict = keywords.get("strict")
    if not (isinstance(strict, ast.Constant) and strict.value is True):
        return []
    reason = keywords.get("reason")
    if isinstance(reason, ast.Constant) and isinstance(reason.value, str):
        return [reason.value]
    if isinstance(reason, ast.Name) and isinstance(constants.get(reason.id), str):
        return [constants[reason.id]]
    if isinstance(reason, ast.Subscript) and isinstance(reason.value, ast.Name):
        table = constants.get(reason.value.id)
        if isinstance(table, dict):
            return sorted({v for v in table.values() if isinstance(v, str)})
    return []


class DeliberateDifferences(SphinxDirective):
    """The differences minijax makes on purpose, from the registry that the fuzzer
    reads (tests/differences.py): each entry's title and text."""

    def run(self) -> list[nodes.Node]:
        self.env.note_reread()  # the output depends on more than the page's source
        path = Path(self.env.srcdir) / "tests" / "differences.py"
        self.env.note_dependency(str(path))
        bullets = nodes.bullet_list()
        for entry in deliberate_differences(path):
            paragraph = nodes.paragraph()
            paragraph += nodes.strong(entry.title, entry.title)
            paragraph += nodes.Text(". ")
            for i, piece in enumerate(entry.text.split("`")):
                if piece:
                    paragraph += nodes.literal(piece, piece) if i % 2 else nodes.Text(piece)
            bullets += nodes.list_item("", paragraph)
        return [bullets]


def deliberate_differences(path: Path) -> list[Any]:
    """The entries of the registry of deliberate differences, in their order."""
    spec = importlib.util.spec_from_file_location("minijax_book_differences", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return list(module.DELIBERATE)


# ---------------------------------------------------------------------------
# The API page (book/api.md).

def skip_foreign_imports(app: Sphinx, what: str, name: str, obj: Any, skip: bool,
                         options: Any) -> bool | None:
    """With ``:imported-members:``, a module's page shows what it re-exports from other
    minijax modules (``minijax.lax.cond`` is defined in minijax.lax.control_flow), but not
    what it imports for its own use: names from outside minijax, and the core types,
    which have entries of their own."""
    if what != "module" or "imported-members" not in options:
        return None
    module = getattr(obj, "__module__", None)
    if module is not None and (not module.startswith("minijax.") or module == "minijax.core"):
        return True
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", nitpick_ignore_as_tuples)
    app.add_directive("jax-parameters-minijax-lacks", MissingParameters)
    app.add_directive("jax-features-minijax-lacks", NotInMinijax)
    app.add_directive("known-differences-from-jax", KnownDifferences)
    app.add_directive("deliberate-differences-from-jax", DeliberateDifferences)
    app.connect("autodoc-skip-member", skip_foreign_imports)
    # Late, so that the scripts other handlers add are seen too.
    app.connect("html-page-context", drop_duplicate_assets, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
