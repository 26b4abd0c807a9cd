# Instructor commands: release, autograde, feedback, export. nbgrader does the work; these
# targets only fix the flags that matter. Included by the top-level Makefile, which defines
# $(PY), $(VENV) and $(STAMP). Run from the repository root (where nbgrader_config.py lives).
#
#   make release   ASSIGNMENT=02-gradient-descent   solutions/ -> exercises/ (commit the result)
#   make sample                                     copy the sample class into submitted/
#   make autograde ASSIGNMENT=02-gradient-descent   grade everything in submitted/*/ASSIGNMENT
#   make feedback  ASSIGNMENT=02-gradient-descent   feedback/<student>/ASSIGNMENT/*.html
#   make export                                     grades.csv (every assignment, every student)
#
# Without ASSIGNMENT, release/autograde/feedback run on every assignment in solutions/.
# --force everywhere: without it nbgrader silently skips an assignment already released or
# graded. OMP_NUM_THREADS=1 pins the grading kernels to one thread (pytorch#188792: the first
# multi-threaded op in a fresh process can be wrong); descent.grading pins torch too.

NBGRADER = OMP_NUM_THREADS=1 PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/nbgrader
ASSIGNMENTS_ALL := $(notdir $(wildcard solutions/[0-9][0-9]-*))
ASSIGNMENT ?=
SELECTED = $(or $(ASSIGNMENT),$(ASSIGNMENTS_ALL))

.PHONY: release autograde feedback export sample

## make release ASSIGNMENT=NN-slug: regenerate exercises/NN-slug from solutions/ (no solutions, no hidden tests)
release: $(STAMP)
	@for a in $(SELECTED); do $(NBGRADER) generate_assignment $$a --force || exit 1; done

## make sample: put the sample class (tests/submissions/sample) into submitted/ to try the steps
sample:
	mkdir -p submitted
	cp -r tests/submissions/sample/* submitted/

## make autograde ASSIGNMENT=NN-slug: run every submission in submitted/*/NN-slug with its hidden tests
autograde: $(STAMP)
	@for a in $(SELECTED); do $(NBGRADER) autograde $$a --force || exit 1; done

## make feedback ASSIGNMENT=NN-slug: HTML feedback with the diagnoses, hidden tests stripped
feedback: $(STAMP)
	@for a in $(SELECTED); do $(NBGRADER) generate_feedback $$a --force || exit 1; done

## make export: every score in the gradebook to grades.csv
export: $(STAMP)
	$(NBGRADER) export --to grades.csv
