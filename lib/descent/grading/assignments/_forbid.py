"""References an assignment forbids beyond :data:`descent.grading.sandbox.REFERENCES`.

:func:`descent.grading.sandbox.forbid_references` swaps the update rules, optimizers and
schedules for a sentinel while student code runs. Some parts ask for something the library
has elsewhere: 03-sgd's sampler (``descent.data.batches``), its variance measurement
(``descent.noise``), 04-momentum's optimal tuning (``descent.rates``). Within
:func:`forbidding`, those count as references too: calling one is delegation, reported by
:func:`~descent.grading.sandbox.call` like any other. The registry is restored on exit, so
another assignment's checks are not affected.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from descent.grading import sandbox

_ABSENT = object()


@contextlib.contextmanager
def forbidding(modules: Mapping[str, tuple[str, ...] | None],
               classes: tuple[type, ...] = ()) -> Iterator[None]:
    """Within the block, ``modules`` (name -> public names, or None for all) and ``classes``
    are references too. Classes that are not optimizers or schedulers (which the sandbox
    forbids by itself) are listed in ``classes``: constructing one is delegation."""
    saved = {name: sandbox.REFERENCES.get(name, _ABSENT) for name in modules}
    inits = {cls: cls.__dict__.get("__init__", _ABSENT) for cls in classes}
    sandbox.REFERENCES.update(modules)
    for cls in classes:
        cls.__init__ = sandbox._sentinel_init
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is _ABSENT:
                sandbox.REFERENCES.pop(name, None)
            else:
                sandbox.REFERENCES[name] = value
        for cls, init in inits.items():
            if init is _ABSENT:
                delattr(cls, "__init__")
            else:
                cls.__init__ = init
