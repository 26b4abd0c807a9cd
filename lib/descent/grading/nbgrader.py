"""nbgrader plumbing for the course: hidden tests kept hidden, no false checksum warnings.

nbgrader's ``ClearHiddenTests`` removes the ``### BEGIN HIDDEN TESTS`` region from a cell's
source, but the error output of a failed hidden test still carries IPython's traceback, which
quotes the failing lines of the cell, i.e. the hidden test. :class:`StripTracebacks` replaces
every error output's traceback by its last line (``CheckFailed: [Part 2.1, eq. (2.1)] …``),
which is the diagnosis the student needs and nothing more. ``nbgrader_config.py`` runs both in
``GenerateFeedback``; :class:`OverwriteReleasedCells` serves ``Autograde`` and ``make grade``.
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells
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


class OverwriteReleasedCells(OverwriteCells):
    """nbgrader's OverwriteCells, without its false "checksum has changed" warning
    (nbgrader#1961): a locked cell handed in exactly as released gets its hidden tests back
    before nbgrader compares it with the source."""

    def preprocess_cell(self, cell, resources, cell_index):
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") and meta.get("locked"):
            try:
                source = self.gradebook.find_source_cell(meta["grade_id"], self.notebook_id,
                                                         self.assignment_id)
            except MissingEntry:
                source = None
            if source is not None and source.locked and source.cell_type == cell.cell_type:
                released = NotebookNode(cell_type=source.cell_type, source=source.source,
                                        metadata={})
                ClearHiddenTests(parent=self)._remove_hidden_test_region(released)
                if released.source != source.source and cell.source == released.source:
                    cell.source = source.source
        return super().preprocess_cell(cell, resources, cell_index)
