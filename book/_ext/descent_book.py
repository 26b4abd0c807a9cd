"""A tiny local Sphinx extension that keeps the Descent book's pages clean and offline.

Two fixes, both in the HTML the browser sees, none in the content:

1. **Duplicate inline scripts.** Under Sphinx 7, an extension that calls
   ``app.add_js_file(None, body=...)`` after the builder exists (sphinx-thebe, sphinx-togglebutton
   do) gets its script written twice, once from the registry and once from the builder. The
   second ``const THEBE_JS_URL = ...`` then throws ``Identifier 'THEBE_JS_URL' has already been
   declared`` on every page. Sphinx 8 deduplicates; JB1 pins ``sphinx~=7.0``. We drop exact
   repeats from the page's ``script_files``, keeping the first.
2. **The unpkg thebe URL.** With ``launch_buttons.thebe: false`` nothing on a page can start thebe,
   yet every page carries ``https://unpkg.com/thebe@…`` and loads ``sphinx-thebe.js``. We drop that
   inline script, the loader, and the thebe config blocks sphinx-thebe appends to each doctree.
   With thebe switched on, they are kept (thebe needs the network anyway).
"""

from __future__ import annotations

from docutils import nodes

_THEBE_MARKERS = ("text/x-thebe-config", "<script>kernelName =")


def _thebe_enabled(app) -> bool:
    launch = app.config.html_theme_options.get("launch_buttons", {}) or {}
    return bool(launch.get("thebe"))


def _script_key(script) -> tuple:
    """What the browser runs: the file, or the inline body, and the attributes (not priority)."""
    attributes = tuple(sorted((k, str(v)) for k, v in script.attributes.items()))
    return (str(script.filename or ""), attributes)


def _is_thebe_script(script) -> bool:
    body = script.attributes.get("body", "")
    return "THEBE_JS_URL" in body or str(script.filename or "").endswith("sphinx-thebe.js")


def clean_scripts(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context``: drop repeated scripts and, with thebe off, thebe's scripts."""
    scripts = context.get("script_files")
    if not scripts:
        return
    drop_thebe = not _thebe_enabled(app)
    seen, kept = set(), []
    for script in sorted(scripts, key=lambda js: js.priority):  # Sphinx's own order, stable
        key = _script_key(script)
        if key in seen or (drop_thebe and _is_thebe_script(script)):
            continue
        seen.add(key)
        kept.append(script)
    context["script_files"] = kept


def drop_thebe_config(app, doctree, docname) -> None:
    """``doctree-resolved`` (after sphinx-thebe): remove its per-page config when thebe is off."""
    if _thebe_enabled(app):
        return
    for node in list(doctree.findall(nodes.raw)):
        if any(marker in node.astext() for marker in _THEBE_MARKERS):
            node.parent.remove(node)


def setup(app):
    app.connect("html-page-context", clean_scripts, priority=900)
    app.connect("doctree-resolved", drop_thebe_config, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
