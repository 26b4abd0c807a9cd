"""nbgrader plumbing for the course: a feedback preprocessor that keeps hidden tests hidden.

nbgrader's ``ClearHiddenTests`` removes the ``### BEGIN HIDDEN TESTS`` region from a cell's
source, but the error output of a failed hidden test still carries IPython's traceback, which
quotes the failing lines of the cell, i.e. the hidden test. :class:`StripTracebacks` replaces
every error output's traceback by its last line (``CheckFailed: [Part 2.1, eq. (2.1)] …``),
which is the diagnosis the student needs and nothing more. ``nbgrader_config.py`` runs both in
``GenerateFeedback``.
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool


class StripTracebacks(Preprocessor):
    """Keep only ``ename: evalue`` of each error output (no source lines, no frames)."""

    # nbconvert preprocessors are off unless enabled; nbgrader registers this one by name.
    enabled = Bool(True).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [f"{output.get('ename', 'Error')}: "
                                       f"{output.get('evalue', '')}"]
        return cell, resources
