"""nbgrader configuration of the Descent course (read by every `nbgrader` command run here).

Layout: `solutions/NN-slug/NN-slug.ipynb` are the sources (solutions, visible and hidden
tests); `nbgrader generate_assignment` writes the student versions to `exercises/`, which is
committed. Submissions go to `submitted/<student>/<assignment>/`, autograded copies to
`autograded/`, feedback HTML to `feedback/` (all three are instructor-side, not committed).
The instructor commands in `make/instructor.mk` wrap the nbgrader steps.
"""

c = get_config()  # noqa: F821 - injected by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "descent"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# Every assignment's checks run well below a second per cell on the CPU; a student's answer
# that loops for ever is stopped after this many seconds (per cell: nbgrader has no
# per-notebook limit; issue 5 adds one).
c.Execute.timeout = 120

# A grade cell the student deleted is put back from the source, so its points are not lost
# silently; an edited one is overwritten (OverwriteCells).
c.OverwriteCells.add_missing_cells = True

# Feedback must never show hidden tests: ClearHiddenTests removes the hidden region from each
# cell's source, StripTracebacks reduces each error to its last line (an IPython traceback
# quotes the failing lines of the cell, i.e. the hidden test).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "descent.grading.nbgrader.StripTracebacks",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# A released grade cell with hidden tests differs from its source, and nbgrader compares a
# submission's locked cells with the *source* (nbgrader#1961): every grade cell with hidden
# tests warned "Attribute 'checksum' ... has changed!" on every submission, drowning the
# warnings that mean something. OverwriteReleasedCells first puts the hidden tests back into a
# cell that is exactly as released, so nbgrader warns only when a student changed a locked
# cell (and then, as before, restores it from the gradebook). `make grade` uses it too.
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "descent.grading.nbgrader.OverwriteReleasedCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
