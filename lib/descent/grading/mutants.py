"""Mutants of an answer cell: the reference solution with one small thing done wrong.

Used twice, with the same generator: by mutation testing (:mod:`descent.grading.mutation`:
every mutant of every solution must lose points) and by the diagnosis search
(:mod:`descent.grading.search`: a student's numbers reproduced by one mutant of the reference
name the mistake). Only the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` are
mutated: what a student writes, not the given scaffolding.

The operators, each a mistake students make (the issue's list):

``arith``        an arithmetic operator swapped (+ ↔ −, × ↔ ÷, ** → ×, // → /)
``constant``     a number c → c + 1 and c − 1 (so 0 ↔ 1 too)
``default``      a hyperparameter left at its default (its uses, a keyword argument dropped,
                 or a group's value ``group["eps"]`` replaced by the constructor's default)
``off-by-one``   < ↔ ≤ and > ↔ ≥; a counter t → t ± 1; ``range(n)`` → ``range(n ± 1)``
``drop-term``    one operand of +, −, ×, ÷ or ** dropped
``swap-args``    two positional arguments, or the operands of −, ÷, **, swapped
``in-place``     ``x = x ∘ y`` ↔ ``x ∘= y``; ``t.op_(…)`` → ``t = t.op(…)``; a ``.clone()`` or
                 ``.copy()`` dropped (aliasing)
``first-only``   a loop over a collection visits its first element only
``global-rng``   the global NumPy/torch generator instead of the one given (``rng.f(…)`` →
                 ``np.random.f(…)``, ``generator=`` dropped, ``default_rng(seed)`` unseeded)
``remove``       one statement removed

Each :class:`Mutant` carries the new source and a description in the student's terms ("as if
(1 − β₂) were β₂ in the second moment v_t"), written from the mutated expression and the
line's own comment, never from the rest of the reference.
"""

from __future__ import annotations

import ast
import copy
import functools
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*$")
OPERATORS = ("arith", "constant", "default", "off-by-one", "drop-term", "swap-args", "in-place",
             "first-only", "global-rng", "remove")

# The book's symbols for the names the solutions use (rendering only).
SYMBOLS = {
    "beta1": "β₁", "beta2": "β₂", "lr": "η", "eps": "ε", "weight_decay": "λ", "momentum": "β",
    "alpha": "α", "grad": "g", "param": "θ", "theta": "θ", "tau": "τ", "lr0": "η₀",
    "eta_min": "η_min", "warmup_steps": "W", "total_steps": "T", "gamma": "γ",
    "step_size": "s", "T_0": "T₀", "max_norm": "c", "batch_size": "B", "beta": "β",
    "min_lr": "η_min", "max_lr": "η_max", "diverge": "k", "mu": "μ",
    "m": "m_t", "v": "v_t", "s": "s_t", "b": "b_t", "m_hat": "m̂_t", "v_hat": "v̂_t", "t": "t",
    "state.m": "m_{t−1}", "state.v": "v_{t−1}", "state.s": "s_{t−1}", "state.b": "b_{t−1}",
}
COUNTERS = {"t", "i", "n", "k", "step", "steps", "epoch", "epochs", "t_cur", "t_i"}
_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
         ast.Pow: ast.Mult, ast.FloorDiv: ast.Div}
_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
_SYMBOL = {ast.Add: "+", ast.Sub: "−", ast.Mult: "×", ast.Div: "/", ast.Pow: "**",
           ast.FloorDiv: "//", ast.Lt: "<", ast.LtE: "≤", ast.Gt: ">", ast.GtE: "≥"}
_RNG_MAKERS = ("default_rng", "Generator", "RandomState", "manual_seed")


@dataclass(frozen=True)
class Mutant:
    """One mutant of an answer cell. ``ident`` is stable while the cell's source is."""

    cell: str            # the answer cell's grade_id
    ident: str           # "operator:line:column:what"
    operator: str
    line: int            # 1-based, in the cell's source without the solution markers
    source: str          # the whole cell, mutated (``ast.unparse``)
    description: str     # "as if … were … in …" (the student's terms)


def student_source(cell_source: str) -> tuple[str, set[int]]:
    """The cell as a correct student writes it (markers removed) and the line numbers (1-based)
    that were between the markers."""
    lines, region, inside = [], set(), False
    for raw in cell_source.splitlines():
        if MARKER.match(raw):
            inside = raw.strip().startswith("### BEGIN")
            continue
        lines.append(raw)
        if inside:
            region.add(len(lines))
    return "\n".join(lines) + "\n", region


def render(node: ast.AST | str) -> str:
    """An expression in the book's symbols when every name has one, else as code."""
    code = node if isinstance(node, str) else ast.unparse(node)
    names = set(_NAME.findall(code))
    if names and names <= set(SYMBOLS):
        text = _NAME.sub(lambda m: SYMBOLS[m.group()], code)
        text = text.replace(" - ", " − ").replace(" * ", "·").replace(" ** ", "^")
        compound = isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub))
        return f"({text})" if compound else text
    return f"`{code}`"


_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*(?:\.[A-Za-z_][A-Za-z_0-9]*)?")


def _comment(line: str) -> str | None:
    if "#" not in line:
        return None
    text = line.split("#", 1)[1].strip()
    return text or None


# -- locating nodes in a copy --------------------------------------------------------------------

Path = tuple[tuple[str, int | None], ...]


def _walk(node: ast.AST, path: Path = ()) -> Iterator[tuple[ast.AST, Path]]:
    yield node, path
    for name, value in ast.iter_fields(node):
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, ast.AST):
                    yield from _walk(item, (*path, (name, i)))
        elif isinstance(value, ast.AST):
            yield from _walk(value, (*path, (name, None)))


def _get(root: ast.AST, path: Path) -> ast.AST:
    node = root
    for name, index in path:
        node = getattr(node, name) if index is None else getattr(node, name)[index]
    return node


def _swap(root: ast.AST, path: Path, new) -> Callable[[], None]:
    """Put ``new`` at ``path`` (None: remove the statement there) and return the undo."""
    parent = _get(root, path[:-1])
    name, index = path[-1]
    if index is None:
        old = getattr(parent, name)
        setattr(parent, name, new)
        return lambda: setattr(parent, name, old)
    body = getattr(parent, name)
    saved = list(body)
    if new is None:
        del body[index]
        if not body:
            body.append(ast.Pass())
    else:
        body[index] = new
    return lambda: body.__setitem__(slice(None), saved)


def _set(root: ast.AST, path: Path, new) -> None:
    parent = _get(root, path[:-1])
    name, index = path[-1]
    if index is None:
        setattr(parent, name, new)
    elif new is None:                       # remove a statement
        body = getattr(parent, name)
        del body[index]
        if not body:
            body.append(ast.Pass())
    else:
        getattr(parent, name)[index] = new


# -- the generator ---------------------------------------------------------------------------------

class _Generator:
    def __init__(self, cell: str, cell_source: str):
        self.cell = cell
        self.source, self.region = student_source(cell_source)
        self.lines = self.source.splitlines()
        self.tree = ast.parse(self.source)
        self.original = ast.unparse(self.tree)
        self.parents: dict[int, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[id(child)] = node
        self.out: dict[str, Mutant] = {}
        self.init_defaults = self._init_defaults()

    # helpers
    def inside(self, node: ast.AST) -> bool:
        """In the solution region, and not inside an f-string (a message's wording is not
        graded: mutating it makes no mistake)."""
        if getattr(node, "lineno", None) not in self.region:
            return False
        parent = self.parents.get(id(node))
        while parent is not None:
            if isinstance(parent, ast.JoinedStr):
                return False
            parent = self.parents.get(id(parent))
        return True

    def statement_of(self, node: ast.AST) -> ast.stmt:
        while not isinstance(node, ast.stmt):
            node = self.parents[id(node)]
        return node

    def where(self, node: ast.AST) -> str:
        """Where in the student's terms: the line's comment, else what the statement sets."""
        stmt = self.statement_of(node)
        comment = _comment(self.lines[stmt.lineno - 1])
        if comment:
            return f" in {comment}"
        if isinstance(stmt, (ast.Assign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            return f" where `{ast.unparse(targets[0])}` is computed"
        if isinstance(stmt, ast.Return):
            return " in the returned value"
        return f" in `{ast.unparse(stmt).splitlines()[0][:60]}`"

    def function_of(self, node: ast.AST) -> ast.FunctionDef | None:
        while id(node) in self.parents:
            node = self.parents[id(node)]
            if isinstance(node, ast.FunctionDef):
                return node
        return None

    def emit(self, operator: str, path: Path, new, what: str, description: str,
             node: ast.AST) -> None:
        undo = _swap(self.tree, path, new)       # mutate in place, unparse, put back
        try:
            source = ast.unparse(self.tree)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)
                compile(source, "<mutant>", "exec")
        except (SyntaxError, ValueError, TypeError, AttributeError):
            return
        finally:
            undo()
        if source == self.original or any(m.source == source for m in self.out.values()):
            return
        line, col = getattr(node, "lineno", 0), getattr(node, "col_offset", 0)
        ident = f"{operator}:{line}:{col}:{what}"
        if ident in self.out:
            ident += f"#{len(self.out)}"
        self.out[ident] = Mutant(self.cell, ident, operator, line, source, description)

    def replace(self, operator: str, node: ast.AST, path: Path, new: ast.AST,
                description: str | None = None) -> None:
        before, after = render(node), render(new)
        self.emit(operator, path, new, ast.unparse(new)[:40],
                  description or f"as if {before} were {after}{self.where(node)}", node)

    # the operators
    def run(self) -> list[Mutant]:
        for node, path in list(_walk(self.tree)):
            if not self.inside(node):
                continue
            if isinstance(node, ast.BinOp):
                self.arith(node, path)
                self.drop_term(node, path)
                self.swap_operands(node, path)
            elif isinstance(node, ast.Constant):
                self.constant(node, path)
            elif isinstance(node, ast.Compare):
                self.compare(node, path)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                self.counter(node, path)
            elif isinstance(node, ast.Call):
                self.call(node, path)
            elif isinstance(node, ast.Subscript):
                self.group_default(node, path)
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
                self.replace("arith", node, path, node.operand)
            if isinstance(node, (ast.For, ast.comprehension)):
                self.first_only(node, path)
            if isinstance(node, ast.stmt):
                self.in_place(node, path)
                self.remove(node, path)
        self.defaults()
        return list(self.out.values())

    def arith(self, node: ast.BinOp, path: Path) -> None:
        swap = _SWAP.get(type(node.op))
        if swap is None:
            return
        new = ast.BinOp(node.left, swap(), node.right)
        self.emit("arith", path, new, _SYMBOL[swap],
                  f"as if {render(node)} were {render(new)}{self.where(node)}", node)

    def drop_term(self, node: ast.BinOp, path: Path) -> None:
        if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
            return
        keep = [node.left] if isinstance(node.op, (ast.Div, ast.Pow)) else \
            [node.left, node.right]
        role = "term" if isinstance(node.op, (ast.Add, ast.Sub)) else \
            {ast.Mult: "factor", ast.Div: "divisor", ast.Pow: "exponent"}[type(node.op)]
        for kept in keep:
            dropped = node.right if kept is node.left else node.left
            what = role if dropped is node.right or role == "term" else "factor"
            if isinstance(node.op, ast.Sub) and kept is node.right:   # a − b → b, not −b
                description = f"as if {render(node)} were {render(kept)}{self.where(node)}"
            else:
                description = (f"as if the {what} {render(dropped)} were missing from "
                               f"{render(node)}{self.where(node)}")
            self.emit("drop-term", path, kept, f"drop {ast.unparse(dropped)[:30]}",
                      description, node)

    def swap_operands(self, node: ast.BinOp, path: Path) -> None:
        if isinstance(node.op, (ast.Sub, ast.Div, ast.Pow)):
            self.replace("swap-args", node, path, ast.BinOp(node.right, node.op, node.left))

    def constant(self, node: ast.Constant, path: Path) -> None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        parent = self.parents.get(id(node))
        if isinstance(parent, ast.Subscript) and isinstance(parent.slice, ast.Constant):
            return                                    # an index: first-only covers it
        for new in (value + 1, value - 1):
            new = type(value)(new)
            self.replace("constant", node, path, ast.Constant(new),
                         f"as if the constant {value!r} were {new!r}{self.where(node)}")

    def compare(self, node: ast.Compare, path: Path) -> None:
        for i, op in enumerate(node.ops):
            swap = _CMP.get(type(op))
            if swap is None:
                continue
            ops = list(node.ops)
            ops[i] = swap()
            new = ast.Compare(node.left, ops, node.comparators)
            self.emit("off-by-one", path, new, _SYMBOL[swap],
                      f"as if `{ast.unparse(node)}` were `{ast.unparse(new)}` "
                      f"({_SYMBOL[type(op)]} where {_SYMBOL[swap]} is meant, or the other "
                      f"way round){self.where(node)}", node)

    def counter(self, node: ast.Name, path: Path) -> None:
        if node.id not in COUNTERS:
            return
        parent = self.parents.get(id(node))
        if isinstance(parent, (ast.Call, ast.keyword)) or (
                isinstance(parent, ast.Attribute)):
            return
        for op, word in ((ast.Add(), "+ 1"), (ast.Sub(), "− 1")):
            new = ast.BinOp(ast.Name(node.id, ast.Load()), op, ast.Constant(1))
            self.emit("off-by-one", path, new, f"{node.id}{'+' if word[0] == '+' else '-'}1",
                      f"as if {node.id} were {node.id} {word}{self.where(node)} (off by one)", node)

    def call(self, node: ast.Call, path: Path) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        # range(n) -> range(n ± 1)
        if name == "range" and node.args:
            last = len(node.args) - 1 if len(node.args) < 3 else 1
            for op, word in ((ast.Add(), "+ 1"), (ast.Sub(), "− 1")):
                args = list(node.args)
                args[last] = ast.BinOp(args[last], op, ast.Constant(1))
                new = ast.Call(func, args, node.keywords)
                self.emit("off-by-one", path, new, f"range{word[0]}1",
                          f"as if the loop ran to `{ast.unparse(node.args[last])} {word}`"
                          f"{self.where(node)} (off by one)", node)
        # swapped positional arguments
        for i in range(len(node.args) - 1):
            a, b = node.args[i], node.args[i + 1]
            if ast.unparse(a) == ast.unparse(b) or isinstance(a, ast.Starred) or \
                    isinstance(b, ast.Starred):
                continue
            args = list(node.args)
            args[i], args[i + 1] = b, a
            self.emit("swap-args", path, ast.Call(func, args, node.keywords),
                      f"{i}<->{i + 1}", f"as if `{ast.unparse(a)}` and `{ast.unparse(b)}` were "
                      f"swapped in the call of `{ast.unparse(func)}`{self.where(node)}", node)
        # a keyword argument dropped: the callee's default applies
        for i, kw in enumerate(node.keywords):
            if kw.arg is None:
                continue
            keywords = node.keywords[:i] + node.keywords[i + 1:]
            if kw.arg == "generator":
                self.emit("global-rng", path, ast.Call(func, node.args, keywords),
                          "generator", "as if the draws came from torch's global generator "
                          f"instead of `{ast.unparse(kw.value)}`{self.where(node)}", node)
                continue
            self.emit("default", path, ast.Call(func, node.args, keywords), f"-{kw.arg}",
                      f"as if `{kw.arg}={ast.unparse(kw.value)}` were left out of the call of "
                      f"`{ast.unparse(func)}` (so its default applies){self.where(node)}",
                      node)
        # the global generator instead of the one given
        if isinstance(func, ast.Attribute) and name in _RNG_MAKERS and node.args:
            self.emit("global-rng", path, ast.Call(func, [], node.keywords), "unseeded",
                      f"as if the generator were created without `{ast.unparse(node.args[0])}`"
                      f" (unseeded){self.where(node)}", node)
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and \
                self.is_generator(func.value.id, node):
            glob = ast.Attribute(ast.Attribute(ast.Name("np", ast.Load()), "random",
                                               ast.Load()), func.attr, ast.Load())
            self.emit("global-rng", path, ast.Call(glob, node.args, node.keywords), "np.random",
                      f"as if `{func.value.id}.{func.attr}(…)` drew from NumPy's global "
                      f"generator, `np.random.{func.attr}(…)`, instead of the generator "
                      f"given{self.where(node)}", node)
        # a copy dropped: aliasing
        if isinstance(func, ast.Attribute) and func.attr in ("clone", "copy") and not node.args:
            self.emit("in-place", path, func.value, f"no-{func.attr}",
                      f"as if `.{func.attr}()` were left out{self.where(node)}: the stored "
                      "value is then the very tensor (or array) that is changed later "
                      "(aliasing)", node)

    def is_generator(self, name: str, node: ast.AST) -> bool:
        fn = self.function_of(node)
        if fn is None:
            return False
        if name in {a.arg for a in fn.args.args + fn.args.kwonlyargs} and \
                name in ("rng", "gen", "generator"):
            return True
        for sub in ast.walk(fn):
            if isinstance(sub, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == name for t in sub.targets):
                value = sub.value
                if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and \
                        value.func.attr in _RNG_MAKERS:
                    return True
        return False

    def group_default(self, node: ast.Subscript, path: Path) -> None:
        """``group["eps"]`` → the constructor's default for eps (the group's value ignored)."""
        if not (isinstance(node.value, ast.Name) and node.value.id == "group"
                and isinstance(node.slice, ast.Constant) and isinstance(node.ctx, ast.Load)):
            return
        key = node.slice.value
        default = self.init_defaults.get(key)
        if default is None:
            return
        self.replace("default", node, path, default,
                     f"as if the group's `{key}` were ignored for the constructor's default "
                     f"{ast.unparse(default)}{self.where(node)}")

    def _init_defaults(self) -> dict[str, ast.expr]:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                args = node.args.args[-len(node.args.defaults):] if node.args.defaults else []
                return {a.arg: d for a, d in zip(args, node.args.defaults, strict=True)}
        return {}

    def first_only(self, node: ast.For | ast.comprehension, path: Path) -> None:
        it = node.iter
        if isinstance(it, ast.Call) and getattr(it.func, "id", "") in ("range", "enumerate",
                                                                         "zip"):
            return
        sliced = ast.Subscript(it, ast.Slice(None, ast.Constant(1)), ast.Load())
        self.emit("first-only", (*path, ("iter", None)), sliced, "[:1]",
                  f"as if the loop over `{ast.unparse(it)}` visited its first element only "
                  f"(the first group or tensor, not all){self.where(it)}", it)

    def in_place(self, node: ast.stmt, path: Path) -> None:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.BinOp) \
                and isinstance(node.value.left, ast.Name) and \
                node.value.left.id == node.targets[0].id:
            new = ast.AugAssign(ast.Name(node.targets[0].id, ast.Store()), node.value.op,
                                node.value.right)
            self.emit("in-place", path, new, "augmented",
                      f"as if `{ast.unparse(node)}` were written in place, `{ast.unparse(new)}`"
                      f": that changes the array the caller passed in", node)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            new = ast.Assign([ast.Name(node.target.id, ast.Store())],
                             ast.BinOp(ast.Name(node.target.id, ast.Load()), node.op,
                                       node.value), lineno=node.lineno)
            self.emit("in-place", path, new, "out-of-place",
                      f"as if `{ast.unparse(node)}` were `{ast.unparse(new)}`: a new object, "
                      "so whatever else holds the old one does not see the change", node)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                isinstance(node.value.func, ast.Attribute) and \
                node.value.func.attr.endswith("_") and not node.value.func.attr.startswith("_") \
                and isinstance(node.value.func.value, ast.Name):
            call, target = node.value, node.value.func.value
            if call.func.attr == "copy_":
                value = call.args[0] if call.args else None
            else:
                value = ast.Call(ast.Attribute(target, call.func.attr[:-1], ast.Load()),
                                 call.args, call.keywords)
            if value is None:
                return
            new = ast.Assign([ast.Name(target.id, ast.Store())], value, lineno=node.lineno)
            self.emit("in-place", path, new, f"{call.func.attr}->rebind",
                      f"as if `{ast.unparse(call)}` were `{ast.unparse(new)}`: that only "
                      f"rebinds the name `{target.id}`, the tensor itself does not change",
                      node)

    def remove(self, node: ast.stmt, path: Path) -> None:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Pass)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            return
        comment = _comment(self.lines[node.lineno - 1])
        head = ast.unparse(node).splitlines()[0]
        what = f"the step {comment}" if comment else f"`{head[:70]}`"
        self.emit("remove", path, None, f"remove {head[:30]}",
                  f"as if {what} were missing (line {node.lineno} of the reference removed)",
                  node)

    def defaults(self) -> None:
        """A parameter with a default whose given value is ignored: every use in the region
        replaced by the default."""
        for fn in ast.walk(self.tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            positional = fn.args.args[-len(fn.args.defaults):] if fn.args.defaults else []
            pairs = list(zip(positional, fn.args.defaults, strict=True)) + [
                (a, d) for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True)
                if d is not None]
            for arg, default in pairs:
                uses = [(n, p) for n, p in _walk(fn) if isinstance(n, ast.Name)
                        and n.id == arg.arg and isinstance(n.ctx, ast.Load) and self.inside(n)]
                if not uses:
                    continue
                tree = copy.deepcopy(self.tree)
                fn_path = next(p for n, p in _walk(self.tree) if n is fn)
                for _, p in uses:
                    _set(tree, (*fn_path, *p), copy.deepcopy(default))
                try:
                    source = ast.unparse(ast.fix_missing_locations(tree))
                except (ValueError, TypeError):
                    continue
                if source == self.original:
                    continue
                ident = f"default:{uses[0][0].lineno}:{uses[0][0].col_offset}:{arg.arg}"
                symbol = SYMBOLS.get(arg.arg)
                name = f"`{arg.arg}` ({symbol})" if symbol else f"`{arg.arg}`"
                self.out[ident] = Mutant(
                    self.cell, ident, "default", uses[0][0].lineno, source,
                    f"as if {name} were always its default {ast.unparse(default)}: the value "
                    "given is ignored")


def mutants(cell: str, cell_source: str) -> list[Mutant]:
    """Every mutant of one answer cell (``cell`` its grade_id, ``cell_source`` with the
    solution markers), in a fixed order."""
    return _Generator(cell, cell_source).run()


@dataclass(frozen=True)
class AnswerCell:
    grade_id: str
    source: str
    parts: tuple[str, ...]          # the grade cells this answer is graded by


def answer_cells(nb) -> list[AnswerCell]:
    """Each code answer cell and the grade cells after it, up to the next answer cell."""
    out: list[AnswerCell] = []
    current = None
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code":
            continue
        if meta.get("solution"):
            current = AnswerCell(meta["grade_id"], cell.source, ())
            out.append(current)
        elif meta.get("grade") and current is not None:
            out[-1] = current = AnswerCell(current.grade_id, current.source,
                                           (*current.parts, meta["grade_id"]))
    return out


@functools.lru_cache(maxsize=64)
def cached(cell: str, cell_source: str) -> tuple[Mutant, ...]:
    return tuple(mutants(cell, cell_source))


def reference_source(cell_source: str) -> str:
    """The unmutated cell as the mutants are written (``ast.unparse``: no comments)."""
    return ast.unparse(ast.parse(student_source(cell_source)[0]))
