"""Griffe extension for the API reference: render Sphinx roles in docstrings.

covergan's numpydoc docstrings cross-reference with Sphinx roles (``:class:`~covergan.cqt.
CQTConfig```, ``:meth:`set_epoch```), which mkdocstrings would print verbatim. This extension
rewrites each role before the docstring is parsed: to a link when the target is a covergan
object (resolved in the docstring's scope, as Sphinx does), otherwise to inline code. Links are
emitted as *optional* autorefs, so a target the site does not render (a private helper) becomes
plain code instead of a ``mkdocs build --strict`` failure.

Loaded by ``mkdocs.yml`` (``plugins.mkdocstrings.handlers.python.options.extensions``); excluded
from the site itself.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|data|exc|obj):`(?P<target>[^`]+)`")


class SphinxRoles(griffe.Extension):
    """Turn ``:role:`target``` into an optional cross-reference or inline code."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None and ":" in obj.docstring.value:
                obj.docstring.value = _rewrite(obj.docstring.value, obj)


def _rewrite(text: str, obj: griffe.Object) -> str:
    return _ROLE.sub(lambda m: _render(m["target"], obj), text)


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias and isinstance(member, griffe.Object):
            found += _walk(member)
    return found


def _render(target: str, obj: griffe.Object) -> str:
    shown = target.strip()
    short = shown.startswith("~")
    path = shown.lstrip("~.")
    title = path.rsplit(".", 1)[-1] if short else path
    full = _resolve(path, obj)
    code = f"<code>{html.escape(title)}</code>"
    if full is None:
        return code
    return f'<autoref identifier="{html.escape(full)}" optional>{code}</autoref>'


def _resolve(path: str, obj: griffe.Object) -> str | None:
    """Full path of ``path`` seen from ``obj``: itself, then enclosing classes and modules."""
    if path.startswith("covergan."):
        return path
    head, _, rest = path.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        member = scope.members.get(head)
        if member is not None:
            base = member.target_path if member.is_alias else member.path
            if not base.startswith("covergan."):
                return None
            return f"{base}.{rest}" if rest else base
        scope = scope.parent
    return None
