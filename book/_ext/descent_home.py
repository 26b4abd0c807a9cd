"""The course's home is one setting; every link and button of the book is derived from it.

The setting is ``repository.url`` in ``_config.yml`` (Jupyter Book passes it on as the theme's
``repository_url``): the public GitHub repository students may see, e.g.
``https://github.com/ORG/REPO``. From it:

- **set**: the repository button, the "open issue" button, and on every chapter (a notebook)
  the launch buttons of the services listed under ``launch_buttons`` in ``_config.yml``
  (Binder and Colab; JupyterHub when the course runs one), each opening that chapter from the
  repository (``book/NN-slug.ipynb``);
- **empty** (the default): none of these buttons, so no page offers a dead one.

The links between the book and the exercises need no home: they are relative, and the
build publishes what they point to.

- A chapter links to its exercise as ``[...](../exercises/NN-slug/NN-slug.ipynb)``, a link
  that also works when the chapter is opened in Jupyter from a checkout. MyST would take
  that path for a (missing) document; :func:`link_exercises` turns it into a plain relative
  link, or leaves the warning (an error in the strict build) when the notebook is missing.
- :func:`publish_notebooks` copies ``exercises/`` and each chapter notebook, executed (with
  its figures) when the build executed it, into the site: ``exercises/NN-slug/NN-slug.ipynb``
  and ``book/NN-slug.ipynb`` next to ``book/NN-slug.html``. An exercise's own links
  (``../../book/NN-slug.ipynb``) then resolve in the built site, in the student release and
  in a checkout alike. Download buttons point into the site (``_sources/``).
"""

from __future__ import annotations

import posixpath
import shutil
from pathlib import Path

from docutils import nodes
from sphinx import addnodes

LAUNCH_SERVICES = ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url",
                   "jupyterlite_url")
REPOSITORY_BUTTONS = ("use_repository_button", "use_issues_button", "use_edit_page_button")
PUBLISHED = "exercises"          # folders of the repository copied into the site as they are


def home(app) -> str:
    """The configured home (the repository URL), or "" when there is none."""
    return str(app.config.html_theme_options.get("repository_url") or "").strip()


def derive_buttons(app, config) -> None:
    """``config-inited``: buttons from the home; with none, no repository or launch button."""
    options = config.html_theme_options
    launch = dict(options.get("launch_buttons") or {})
    if home(app):
        options["use_repository_button"] = True     # JB's defaults say False, so set both
        options["use_issues_button"] = True
    else:
        options["repository_url"] = ""
        for key in REPOSITORY_BUTTONS:
            options[key] = False
        for key in LAUNCH_SERVICES:
            launch.pop(key, None)
    options["launch_buttons"] = launch


def _published_target(app, docname: str, target: str) -> str | None:
    """The site-relative path of a link's target under a published folder, if it exists."""
    if not target.split("/", 1)[0] == PUBLISHED:
        return None
    for suffix in ("", ".ipynb"):
        if (Path(app.srcdir) / f"{target}{suffix}").is_file():
            return f"{target}{suffix}"
    return None


def link_exercises(app, doctree) -> None:
    """``doctree-read``: MyST links to a published notebook become plain relative links."""
    docname = app.env.docname
    for xref in list(doctree.findall(addnodes.pending_xref)):
        if xref.get("reftype") != "myst" or xref.get("refdomain") != "doc":
            continue
        path = _published_target(app, docname, xref["reftarget"])
        if path is None:
            continue
        uri = posixpath.relpath(path, posixpath.dirname(docname) or ".")
        if xref.get("reftargetid"):
            uri += f"#{xref['reftargetid']}"
        reference = nodes.reference("", "", internal=False, refuri=uri)
        reference += xref.children
        xref.replace_self(reference)


def publish_notebooks(app, exception) -> None:
    """``build-finished``: the exercises and the chapter notebooks, into the site."""
    if exception is not None or app.builder.format != "html":
        return
    src, out = Path(app.srcdir), Path(app.outdir)
    target = out / PUBLISHED
    if target.exists():
        shutil.rmtree(target)
    if (src / PUBLISHED).is_dir():
        shutil.copytree(src / PUBLISHED, target,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    executed = out.parent / "jupyter_execute"
    for docname in sorted(app.env.found_docs):
        source = Path(app.env.doc2path(docname))
        if source.suffix != ".ipynb":
            continue
        run = executed / f"{docname}.ipynb"
        destination = out / f"{docname}.ipynb"
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run if run.is_file() else source, destination)


def setup(app):
    app.connect("config-inited", derive_buttons)
    app.connect("doctree-read", link_exercises)
    app.connect("build-finished", publish_notebooks)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
