"""Programs in model answers: the Python code a response contains and the examples it states.

A code-writing task's answer is checked by running it, so a verifier needs two things from a
response: its *definitions* (imports, functions, classes and constant assignments, without the
example usage that would run on import) and the *cases* it states - `assert f(1) == 2`, a
`print(f(1))  # Output: 2` line, a call followed by a `# Result: 2` comment, a `>>> f(1)` doctest.
A case whose arguments are not literals (after resolving names assigned a literal earlier in the
same block) cannot be replayed against another program and is skipped.

Pure text processing: nothing here runs code (see `handoffs_bench.sandbox`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache

__all__ = ["Case", "Program", "parse_program"]

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_TAGGED = re.compile(r"\[(PYTHON|TESTS)\](.*?)(?:\[/\1\]|\Z)", re.DOTALL)
_NOT_PYTHON = frozenset(
    {"javascript", "js", "java", "c", "cpp", "c++", "csharp", "cs", "go", "rust", "ruby", "php"}
)
_OUTPUT_COMMENT = re.compile(
    r"#\s*(?:output|result|returns?|expected(?: output)?|prints?|should (?:print|return)|"
    r"=>|->|→)\s*(?:is|will be|would be)?\s*:?\s*(.+)$",
    re.IGNORECASE,
)
_BARE_COMMENT = re.compile(r"\)\s*#\s*(.+)$")
_NEXT_LINE_RESULT = re.compile(
    r"^\s*#\s*(?:output|result|returns?|expected(?: output)?|prints?)\s*:?\s*(.+)$", re.IGNORECASE
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One stated example: calling `function` as `call` should give `expected`."""

    function: str
    """The name the response's code calls (mapped to another program's entry point when replayed)."""
    call: str
    """A call expression whose arguments are literals, e.g. `f([1, 2], 3)`."""
    expected: str
    """A literal (`[1, 2]`) or, for printed output that is not one, the printed text."""
    printed: bool
    """Whether `expected` is what `print` showed (compared as text when it is not a literal)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Program:
    """The Python in one response."""

    definitions: str
    """Imports, functions, classes and literal constants, in order, ready to `exec`."""
    entry: str | None
    """The function the response most likely means as its answer (None: it defines none)."""
    cases: tuple[Case, ...]
    """The examples the response states about its own code."""


def _blocks(response: str) -> list[str]:
    tagged = [body for _, body in _TAGGED.findall(response)]
    fenced = [body for lang, body in _FENCE.findall(response) if lang.lower() not in _NOT_PYTHON]
    blocks = tagged + fenced
    if not blocks and re.search(r"^\s*def \w+\(", response, re.MULTILINE):
        blocks = [response]
    return [b for b in blocks if _parse(b) is not None]


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _literal(node: ast.expr, env: dict[str, str]) -> str | None:
    """The source of a literal expression, with names assigned a literal substituted."""
    if isinstance(node, ast.Name):
        return env.get(node.id)
    source = ast.unparse(node)
    try:
        ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return source


def _call(node: ast.expr, env: dict[str, str]) -> tuple[str, str] | None:
    """(function, call source) when node is `name(literal, ...)`."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return None
    args = [_literal(a, env) for a in node.args]
    kwargs = [(k.arg, _literal(k.value, env)) for k in node.keywords]
    if any(a is None for a in args) or any(k is None or v is None for k, v in kwargs):
        return None
    parts = [str(a) for a in args] + [f"{k}={v}" for k, v in kwargs]
    return node.func.id, f"{node.func.id}({', '.join(parts)})"


def _expected(text: str) -> tuple[str, bool] | None:
    """A comment's stated output: (literal source, True) or (plain text, False)."""
    text = text.strip().rstrip(".")
    candidates = [text, text.split(" (")[0].strip(), text.split("  ")[0].strip()]
    for candidate in candidates:
        try:
            ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return candidate, True
    return (text, False) if text and len(text) <= 200 else None


def _block_cases(source: str, module: ast.Module) -> list[Case]:
    lines = source.splitlines()
    env: dict[str, str] = {}
    cases: list[Case] = []
    for stmt in module.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Name) and (value := _literal(stmt.value, env)) is not None:
                env[target.id] = value
            continue
        if isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Compare):
            test = stmt.test
            if len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
                called = _call(test.left, env)
                expected = _literal(test.comparators[0], env)
                if called and expected is not None:
                    cases.append(
                        Case(function=called[0], call=called[1], expected=expected, printed=False)
                    )
            continue
        if not isinstance(stmt, ast.Expr):
            continue
        expr, printed = stmt.value, False
        if (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Name)
            and expr.func.id == "print"
            and len(expr.args) == 1
            and not expr.keywords
        ):
            expr, printed = expr.args[0], True
        called = _call(expr, env)
        if called is None:
            continue
        end = (stmt.end_lineno or stmt.lineno) - 1
        line = lines[end] if end < len(lines) else ""
        comment = _OUTPUT_COMMENT.search(line)
        if comment is None and end + 1 < len(lines):
            comment = _NEXT_LINE_RESULT.match(lines[end + 1])
        stated = _expected(comment.group(1)) if comment else None
        if comment is None and (bare := _BARE_COMMENT.search(line)):
            stated = _expected(bare.group(1))  # `print(f(2))  # 4`: only when 4 is a literal
            stated = stated if stated and stated[1] else None
        if stated is not None:
            expected, is_literal = stated
            cases.append(
                Case(
                    function=called[0],
                    call=called[1],
                    expected=expected,
                    printed=printed or not is_literal,
                )
            )
    return cases


_DOCTEST = re.compile(r"^\s*>>>\s*(.+)\n\s*([^\s>].*)$", re.MULTILINE)


def _doctests(response: str) -> list[Case]:
    cases: list[Case] = []
    for call_text, result in _DOCTEST.findall(response):
        module = _parse(call_text.strip())
        if module is None or len(module.body) != 1 or not isinstance(module.body[0], ast.Expr):
            continue
        called = _call(module.body[0].value, {})
        stated = _expected(result)
        if called and stated:
            cases.append(
                Case(function=called[0], call=called[1], expected=stated[0], printed=not stated[1])
            )
    return cases


def _is_definition(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef):
        return True
    if isinstance(stmt, ast.Assign | ast.AnnAssign):
        value = stmt.value
        return value is not None and _literal(value, {}) is not None
    return False


def _entry(functions: list[ast.FunctionDef]) -> str | None:
    """The last top-level function that no other top-level function calls (else the last one)."""
    names = [f.name for f in functions if f.name != "main"]
    if not names:
        return None
    called = {
        node.func.id
        for f in functions
        for node in ast.walk(f)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id != f.name
    }
    roots = [n for n in names if n not in called]
    return (roots or names)[-1]


@cache
def parse_program(response: str) -> Program | None:
    """The Python definitions and stated cases of a response, or None when it has no Python."""
    blocks = [(b, m) for b in _blocks(response) if (m := _parse(b)) is not None]
    if not blocks:
        return None
    kept: list[ast.stmt] = []
    functions: list[ast.FunctionDef] = []
    for _, module in blocks:
        for stmt in module.body:
            if _is_definition(stmt):
                kept.append(stmt)
                if isinstance(stmt, ast.FunctionDef):
                    functions.append(stmt)
    cases = [c for source, module in blocks for c in _block_cases(source, module)]
    cases += _doctests(response)
    unique = tuple(dict.fromkeys(cases))
    return Program(
        definitions=ast.unparse(ast.Module(body=kept, type_ignores=[])),
        entry=_entry(functions),
        cases=unique,
    )
