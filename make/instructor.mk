# Instructor commands: release, autograde, feedback, export. nbgrader does the work; these
# targets only fix the flags that matter. Included by the top-level Makefile, which defines
# $(PY), $(VENV) and $(STAMP). Run from the repository root (where nbgrader_config.py lives).
#
#   make release   ASSIGNMENT=02-gradient-descent   solutions/ -> exercises/ (commit the result)
#   make sample                                     copy the sample class into submitted/
#   make autograde ASSIGNMENT=02-gradient-descent   grade everything in submitted/*/ASSIGNMENT
#                                                   (nbgrader alone: for trusted work only)
#   make grade     ASSIGNMENT=02-gradient-descent   the same for a class: in parallel, student
#                                                   code confined, tests in the grader, statuses
#   make report   [ASSIGNMENT=...]                  the statuses of the last `make grade`
#   make similarity ASSIGNMENT=02-gradient-descent  near-copies among the answer cells
#   make feedback  ASSIGNMENT=02-gradient-descent   feedback/<student>/ASSIGNMENT/*.html
#   make student-release                            dist/student/ + .zip: book, exercises, wheel
#   make export                                     grades.csv (every assignment, every student,
#                                                   with status and reason)
#
# Without ASSIGNMENT, release/autograde/feedback run on every assignment in solutions/.
# --force everywhere: without it nbgrader silently skips an assignment already released or
# graded. OMP_NUM_THREADS=1 pins the grading kernels to one thread (pytorch#188792: the first
# multi-threaded op in a fresh process can be wrong); descent.grading pins torch too.

NBGRADER = OMP_NUM_THREADS=1 PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/nbgrader
ASSIGNMENTS_ALL := $(notdir $(wildcard solutions/[0-9][0-9]-*))
ASSIGNMENT ?=
SELECTED = $(or $(ASSIGNMENT),$(ASSIGNMENTS_ALL))

WORKERS ?=
SCHEDULER ?=
UNSAFE ?=
GRADE_FLAGS = $(if $(WORKERS),--workers $(WORKERS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) \
              $(if $(UNSAFE),--unsafe)

.PHONY: release autograde grade report feedback export sample similarity

## make release ASSIGNMENT=NN-slug: regenerate exercises/NN-slug from solutions/ (no solutions, no hidden tests)
release: $(STAMP)
	@for a in $(SELECTED); do $(NBGRADER) generate_assignment $$a --force || exit 1; done

## make sample: put the sample class (tests/submissions/sample) into submitted/ to try the steps
sample:
	mkdir -p submitted
	cp -r tests/submissions/sample/* submitted/

## make autograde ASSIGNMENT=NN-slug: run every submission in submitted/*/NN-slug with its hidden tests
autograde: $(STAMP)
	@for a in $(SELECTED); do $(NBGRADER) autograde $$a --force || { echo "make autograde: "\
		"$$a failed (nbgrader grades only a released assignment: make release ASSIGNMENT=$$a)" >&2; \
		exit 1; }; done

## make grade ASSIGNMENT=NN-slug [WORKERS=N] [SCHEDULER=tcp://host:8786] [UNSAFE=1]: grade every submission in parallel, the test cells in the grader, the student's code confined; statuses in grades/NN-slug.json
grade: $(STAMP)
	@test -n "$(ASSIGNMENT)" || { echo "make grade needs ASSIGNMENT=NN-slug"; exit 2; }
	OMP_NUM_THREADS=1 $(PY) -m descent.grading.classroom grade $(ASSIGNMENT) $(GRADE_FLAGS)

## make similarity ASSIGNMENT=NN-slug: near-copies among the answer cells (vs the solution, the library, each other) -> reports/NN-slug-similarity.html
similarity: $(STAMP)
	@test -n "$(ASSIGNMENT)" || { echo "make similarity needs ASSIGNMENT=NN-slug"; exit 2; }
	$(PY) -m descent.grading.classroom similarity $(ASSIGNMENT)

## make report [ASSIGNMENT=NN-slug]: counts per status and the submissions that need a person
report: $(STAMP)
	$(PY) -m descent.grading.classroom report $(ASSIGNMENT)

## make feedback ASSIGNMENT=NN-slug: HTML feedback with the diagnoses, hidden tests stripped
feedback: $(STAMP)
	@for a in $(SELECTED); do $(NBGRADER) generate_feedback $$a --force || exit 1; done

## make export: every score in the gradebook to grades.csv, with status and reason (blank score when failed/timeout/memory)
export: $(STAMP)
	$(NBGRADER) export --exporter descent.grading.export.StatusCsvExporter --to grades.csv

## make student-release [BOOK_HTML=_build/html] [STUDENT_DIR=dist/student]: what students get, in one folder (the site: book, exercises/, the descent wheel, README) and a .zip beside it; builds the book first when it is stale
BOOK_HTML ?= _build/html
STUDENT_DIR ?= dist/student
.PHONY: student-release
student-release: $(STAMP)
	@$(PY) make/student_release.py --check-book $(BOOK_HTML) || \
		{ test "$(BOOK_HTML)" = _build/html && $(MAKE) --no-print-directory book; }
	$(PY) make/student_release.py --book $(BOOK_HTML) --out $(STUDENT_DIR)
