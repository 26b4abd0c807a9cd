"""What the nbgrader test cells call: compare a student's work with the reference, explain.

Importing this package pins torch to one thread and warms up the ops the checks use
(:mod:`descent.grading._determinism`, pytorch#188792), so a correct submission never fails
by chance in a fresh kernel. In a Jupyter kernel it also shows warnings on stdout, prefixed
"Warning", instead of stderr: nbgrader scores a grade cell that writes to stderr 0, and a
correct answer that warns (a torch UserWarning is enough) must keep its points. The checks
themselves keep the student's warnings as data (``Outcome.warnings``) and show them with
their verdict.

How an assignment uses it (the pattern of ``solutions/01-problem`` and ``02-gradient-descent``)
-----------------------------------------------------------------------------------------------

One notebook ``solutions/NN-slug/NN-slug.ipynb``; each part is an answer cell and a grade cell::

    # answer cell (solution, autograded): only the equation's lines are between the markers
    def gd_step(theta, grad, lr):
        ### BEGIN SOLUTION
        return theta - lr * grad
        ### END SOLUTION

    # grade cell (locked, points): visible self-check, then hidden tests on new seeds/shapes
    grading.check_rule(gd_step, spec=GD, part="2.1", equation="eq. (2.1)")
    ### BEGIN HIDDEN TESTS
    grading.check_rule(gd_step, spec=GD, part="2.1", equation="eq. (2.1)",
                       seeds=[11, 12], shapes=[(7,), (4, 5)], steps=30)
    ### END HIDDEN TESTS

Expected values come from the reference at test time, never from pasted arrays. Every
failure raises :class:`CheckFailed` whose message opens with ``[Part …, eq. …]`` and says what
to fix. Add a manually graded markdown answer where understanding matters
(:func:`descent.grading.authoring.written`; that module imports nbformat, so it is
not imported here).

Untrusted code computes, trusted code compares
----------------------------------------------

Every check is two halves:

1. *untrusted* — ``run_rule``, ``run_function``, ``run_schedule``, ``run_training`` call the
   student's code on inputs the grader chose (:class:`RuleCase`, keyword inputs, a
   :class:`RunSpec`) and record plain data in an :class:`Outcome`: arrays, numbers, the error
   message, the inputs changed in place, the references called, and what ``observe`` read
   after the call (gradients left in ``p.grad``, what the grader's optimizer saw);
2. *trusted* — ``judge_rule``, ``judge_function``, ``judge_schedule``, ``judge_training``
   recompute the reference from the same choice of inputs and return a :class:`Verdict`.

``check_*`` = judge(run(...)).raise_for(part, equation). Every call of student code goes
through :func:`descent.grading.sandbox.call`. In a student's Jupyter both halves run next to
the student's code (a self-check: the student could patch it, and only fools themselves).
The class grader (:mod:`descent.grading.classroom`) runs the grade cells, hidden tests
included, in its own process (:mod:`descent.grading.trusted`); there each ``sandbox.call``
crosses a door (:mod:`descent.grading.door`) to the student's code in a confined process
(:mod:`descent.grading.confine`) and brings back plain data only
(:mod:`descent.grading.plain`). Code crosses by name only, never by value, so the checks' run
halves are library functions and ``functools.partial`` of them, never lambdas.

One mistake costs one part: when a later part calls the student's earlier answers
(``run_gd`` calls ``gd_step``), the check substitutes the grader's trusted versions for them
during the call (``sandbox.call(..., trusted={"gd_step": …})``). Checks print one line on
success and return None: nbgrader reads a number left as a cell's value as partial credit.

Assignment-specific inputs and references live in :mod:`descent.grading.assignments`
(``a01_problem``, ``a02_gradient_descent``, …), one module per notebook.

What the checks diagnose
------------------------

- a mistake from the catalogue (:mod:`descent.grading.catalogue`): each is a variant of the
  reference rule (no bias correction, t off by one or not incremented, ε inside the root,
  L2 instead of decoupled decay, decay not scaled by η, EMA momentum, wrong Nesterov
  look-ahead, the square missing in RMSprop, gradient ascent, η missing); schedules:
  a warmup boundary off by one, a cosine that does not reach its minimum; functions: a
  known wrong factor (2, n, −1, …) given by the test cell;
- the rule changed the caller's array (each call gets watched inputs, compared after);
- NaN or inf; the wrong shape; an exception (its type, message and line);
- delegation: calling a reference the part asks to implement (:func:`forbid_references`)
  earns no points, with a message saying why;
- otherwise: the first step and element that differ, expected and got; and, in the class
  grader, the diagnosis search (:mod:`descent.grading.search`) replays the grade cell's calls
  on mutants of the reference solution (:mod:`descent.grading.mutants`) and names the ones
  that reproduce every answer ("your code behaves as if (1 − β₂) were β₂ in v_t").

Tolerance comes first: float32 rounding and another order of operations pass before any
mistake is looked for, and a mistake is named only when its variant reproduces the numbers.

Every input a part's spec names is exercised: hyperparameters away from their defaults, two
param groups wherever groups exist, seeds twice and once more (the same result, another one,
and the global generators untouched: :mod:`descent.grading.randomness`), and recording
doubles for the components a part must call (08's GradScaler). Mutation testing
(:mod:`descent.grading.mutation`, ``make mutants``) checks the checks: every mutant of every
solution loses points, or is listed as equivalent with a proof.

Training runs (:mod:`descent.grading.training`) re-run the student's optimizer under the
grader's control on the best device and compare the loss curve with the reference run on the
same device, with a tolerance justified per device, then a final-loss threshold.
"""

from descent.grading._determinism import pin_threads, warnings_to_stdout

pin_threads()
warnings_to_stdout()

from descent.grading import catalogue  # noqa: E402
from descent.grading.catalogue import adam_spec, gd_spec, rmsprop_spec, sgd_spec  # noqa: E402
from descent.grading.compare import TOL32, TOL64, Tolerance  # noqa: E402
from descent.grading.feedback import CheckFailed, DelegationError, Verdict  # noqa: E402
from descent.grading.functions import (  # noqa: E402
    check_function,
    check_number,
    judge_function,
    run_function,
)
from descent.grading.rules import (  # noqa: E402
    Mistake,
    RuleCase,
    RuleSpec,
    check_rule,
    judge_rule,
    rule_cases,
    run_rule,
)
from descent.grading.sandbox import Outcome, call, forbid_references  # noqa: E402
from descent.grading.schedules import check_schedule, judge_schedule, run_schedule  # noqa: E402
from descent.grading.training import (  # noqa: E402
    RunSpec,
    check_training_run,
    judge_training,
    run_training,
)

__all__ = [
    "CheckFailed", "DelegationError", "Mistake", "Outcome", "RuleCase", "RuleSpec", "RunSpec",
    "TOL32", "TOL64", "Tolerance", "Verdict", "adam_spec", "call", "catalogue",
    "check_function", "check_number", "check_rule", "check_schedule", "check_training_run",
    "forbid_references", "gd_spec", "judge_function", "judge_rule", "judge_schedule",
    "judge_training", "pin_threads", "rmsprop_spec", "rule_cases", "run_function", "run_rule",
    "run_schedule", "run_training", "sgd_spec",
]
