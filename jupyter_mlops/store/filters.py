"""The run filter language, compiled to parameterized SQL.

    metrics.acc > 0.9 and (params.C = '0.5' or tags.team = "churn")
    status != 'failed' and started_at >= '2026-11-01' and not name like 'tmp%'

A comparison is `FIELD OP VALUE`: FIELD is `metrics.KEY`, `params.KEY`,
`tags.KEY` or a run attribute (see `ATTRIBUTES`); OP is one of
= != < <= > >= like; VALUE is a number (also `inf`, `-inf`, `nan`) or a quoted
string. `metrics.KEY = nan` finds the runs whose latest KEY is NaN. Comparisons join with
`and` / `or` / `not` and parentheses. Values only ever travel as SQL parameters.

An expression is at most `MAX_LENGTH` characters and nests parentheses and
`not`s at most `MAX_DEPTH` deep: the parser is recursive, and without these
bounds a hostile filter (hundreds of `(` or `not`) would exhaust Python's
stack instead of getting a `FilterSyntaxError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from ..errors import FilterSyntaxError

# Attribute name -> SQL expression over the `runs` table aliased `r`.
# `status` is the effective status: a running run with a stale heartbeat is killed.
ATTRIBUTES = {
    "id": "r.id", "uuid": "r.uuid", "name": "r.name", "notebook": "r.notebook",
    "source_kind": "r.source_kind", "code_digest": "r.code_digest",
    "git_commit": "r.git_commit", "git_branch": "r.git_branch", "git_dirty": "r.git_dirty",
    "python": "r.python", "host": "r.host", "user": 'r."user"',
    "started_at": "r.started_at", "ended_at": "r.ended_at",
    "status": "(CASE WHEN r.status = 'running' AND r.heartbeat_at < :stale_before"
              " THEN 'killed' ELSE r.status END)",
}
_TIME_ATTRIBUTES = {"started_at", "ended_at"}
_NUMBER_ATTRIBUTES = {"id", "git_dirty"} | _TIME_ATTRIBUTES  # the others are text
_OPERATORS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">",
              ">=": ">=", "like": "LIKE"}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<op><=|>=|==|!=|<>|=|<|>)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|(?i:inf(?:inity)?|nan))(?![\w.]))
  | (?P<field>(?:metrics|params|tags)\.(?:`[^`]+`|[\w.\-/]+)|[A-Za-z_]\w*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "like"}
MAX_LENGTH = 4000  # characters in one filter expression
MAX_DEPTH = 32  # parentheses and `not`s open at one place
_DESCRIPTIONS = {"field": "a field", "op": "an operator", "like": "an operator",
                 "string": "a quoted string", "number": "a number", "rparen": "')'"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


@dataclass(frozen=True)
class CompiledFilter:
    """A SQL condition over `runs r` and its named parameters (`:stale_before` is the caller's)."""

    sql: str
    params: dict[str, object]


def _tokenize(expression: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None:
            raise FilterSyntaxError(expression, position,
                                    f"unexpected character {expression[position]!r}")
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "field" and text.lower() in _KEYWORDS:
            kind = text.lower()
        if kind != "space":
            tokens.append(_Token(kind, text, position))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, expression: str) -> None:
        if len(expression) > MAX_LENGTH:
            raise FilterSyntaxError(expression, MAX_LENGTH,
                                    f"the filter is {len(expression)} characters long, more "
                                    f"than {MAX_LENGTH}; split it or select fewer values")
        self.expression = expression
        self.tokens = _tokenize(expression)
        self.index = 0
        self.depth = 0
        self.params: dict[str, object] = {}

    def error(self, problem: str, token: _Token | None = None) -> FilterSyntaxError:
        position = token.position if token else len(self.expression)
        return FilterSyntaxError(self.expression, position, problem)

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, *kinds: str) -> _Token:
        token = self.peek()
        wanted = " or ".join(dict.fromkeys(_DESCRIPTIONS[kind] for kind in kinds))
        if token is None:
            raise self.error(f"expected {wanted}, found the end")
        if token.kind not in kinds:
            raise self.error(f"expected {wanted}, found {token.text!r}", token)
        self.index += 1
        return token

    def parse(self) -> str:
        if not self.tokens:
            raise self.error("empty filter")
        sql = self.parse_or()
        leftover = self.peek()
        if leftover is not None:
            raise self.error(f"unexpected {leftover.text!r}", leftover)
        return sql

    def parse_or(self) -> str:
        parts = [self.parse_and()]
        while (token := self.peek()) is not None and token.kind == "or":
            self.index += 1
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def parse_and(self) -> str:
        parts = [self.parse_not()]
        while (token := self.peek()) is not None and token.kind == "and":
            self.index += 1
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def parse_not(self) -> str:
        token = self.peek()
        if token is None or token.kind not in ("not", "lparen"):
            return self.parse_comparison()
        self.index += 1
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested more than {MAX_DEPTH} deep (parentheses and `not`s); "
                             "simplify the filter", token)
        if token.kind == "not":
            sql = f"(NOT {self.parse_not()})"
        else:
            sql = self.parse_or()
            self.take("rparen")
        self.depth -= 1
        return sql

    def bind(self, value: object) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def parse_comparison(self) -> str:
        field = self.take("field")
        op_token = self.take("op", "like")
        op = _OPERATORS[op_token.text.lower()]
        value_token = self.take("string", "number")
        is_number = value_token.kind == "number"
        value: object = float(value_token.text) if is_number else _unquote(value_token.text)
        if op == "LIKE" and is_number:
            raise self.error("`like` needs a quoted pattern", value_token)

        namespace, dot, key = field.text.partition(".")
        if is_number and math.isnan(value):
            return self.nan_comparison(field, namespace if dot else "", key, op, value_token)
        if dot and namespace in ("metrics", "params", "tags"):
            key = key.strip("`")
            if namespace == "metrics" and not is_number:
                raise self.error(f"metrics are numbers: compare {field.text} with a number",
                                 value_token)
            table = "latest_metrics" if namespace == "metrics" else namespace
            # params and tags are text: a number compares them numerically.
            numeric_text = is_number and namespace != "metrics"
            column = "CAST(v.value AS REAL)" if numeric_text else "v.value"
            # A correlated EXISTS walks runs newest first and stops at LIMIT, using the
            # (run_id, key) primary key: fast for the usual "first N matches" query.
            return (f"EXISTS (SELECT 1 FROM {table} v WHERE v.run_id = r.id"
                    f" AND v.key = {self.bind(key)} AND {column} {op} {self.bind(value)})")
        if field.text not in ATTRIBUTES:
            known = ", ".join(sorted(ATTRIBUTES))
            raise self.error(f"unknown field {field.text!r} (use metrics.KEY, params.KEY, "
                             f"tags.KEY or one of: {known})", field)
        if field.text in _TIME_ATTRIBUTES and not is_number:
            try:
                value = datetime.fromisoformat(str(value)).astimezone().timestamp()
            except (ValueError, OverflowError, OSError):  # not a date, or out of range
                raise self.error(f"{field.text} takes a number (epoch seconds) or an ISO date "
                                 "such as '2026-11-01' (this one is not a date or out of range)",
                                 value_token) from None
        if field.text in _NUMBER_ATTRIBUTES and not is_number:
            try:  # a quoted number is that number, as SQLite's column affinity reads it
                value = float(str(value))
            except ValueError:
                raise self.error(f"{field.text} is a number: compare it with one, not "
                                 f"{value_token.text}", value_token) from None
        elif field.text not in _NUMBER_ATTRIBUTES and is_number:
            value = repr(value)  # text compared with a number's text, as SQLite does
        return f"{ATTRIBUTES[field.text]} {op} {self.bind(value)}"


    def nan_comparison(self, field: _Token, namespace: str, key: str, op: str,
                       value_token: _Token) -> str:
        """`metrics.KEY = nan` finds runs whose latest KEY is NaN, `!= nan` the others that
        have KEY (NaN is stored as NULL); nothing else compares with NaN."""
        if namespace != "metrics" or op not in ("=", "!="):
            raise self.error("nan compares only with = or != and only metrics "
                             f"(metrics.KEY = nan); {field.text} {op} nan matches nothing",
                             value_token)
        test = "IS NULL" if op == "=" else "IS NOT NULL"
        return (f"EXISTS (SELECT 1 FROM latest_metrics v WHERE v.run_id = r.id"
                f" AND v.key = {self.bind(key.strip('`'))} AND v.value {test})")


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def compile_filter(expression: str) -> CompiledFilter:
    """Compile a filter expression; raises `FilterSyntaxError` pointing at the bad token."""
    parser = _Parser(expression)
    sql = parser.parse()
    return CompiledFilter(sql=sql, params=parser.params)
