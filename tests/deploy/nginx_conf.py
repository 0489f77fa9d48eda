"""A small reader of nginx configuration, enough to check deploy/nginx.conf
without nginx: blocks and directives, and which ``location`` nginx picks for a
path (exact, then the longest prefix unless a regular expression matches
first; nginx's documented order)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def one(self, name: str) -> Directive:
        (found,) = self.all(name)
        return found

    def values(self, name: str) -> list[list[str]]:
        return [d.args for d in self.all(name)]


@dataclass
class Location:
    modifier: str  # "", "=", "^~", "~", "~*"
    pattern: str
    directive: Directive = field(repr=False)


_TOKEN = re.compile(
    r"""\s*(?:(\#[^\n]*)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|([{};])|([^\s{};"'#][^\s{};]*))"""
)


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip():
                raise ValueError(f"cannot read nginx configuration at {text[pos : pos + 40]!r}")
            break
        pos = match.end()
        comment, quoted, punct, word = match.groups()
        if comment is not None:
            continue
        if quoted is not None:
            out.append(quoted[1:-1])
        elif punct is not None:
            out.append(punct)
        elif word is not None:
            out.append(word)
    return out


def parse(text: str) -> Directive:
    """The whole file as the block of a root directive."""
    tokens = _tokens(text)
    pos = 0

    def block() -> list[Directive]:
        nonlocal pos
        items: list[Directive] = []
        while pos < len(tokens) and tokens[pos] != "}":
            words: list[str] = []
            while tokens[pos] not in (";", "{", "}"):
                words.append(tokens[pos])
                pos += 1
            if tokens[pos] == ";":
                pos += 1
                items.append(Directive(words[0], words[1:]))
            elif tokens[pos] == "{":
                pos += 1
                inner = block()
                if tokens[pos] != "}":
                    raise ValueError("unclosed block")
                pos += 1
                items.append(Directive(words[0], words[1:], inner))
            else:
                raise ValueError(f"directive {words} not ended with ';'")
        return items

    items = block()
    if pos != len(tokens):
        raise ValueError("unbalanced '}'")
    return Directive("", [], items)


def locations(server: Directive) -> list[Location]:
    found = []
    for d in server.all("location"):
        if len(d.args) == 2:
            found.append(Location(d.args[0], d.args[1], d))
        else:
            found.append(Location("", d.args[0], d))
    return found


def select(server: Directive, path: str) -> Location | None:
    """The location nginx uses for ``path`` (no nested locations, no named ones)."""
    locs = locations(server)
    for loc in locs:
        if loc.modifier == "=" and loc.pattern == path:
            return loc
    prefixes = [loc for loc in locs if loc.modifier in ("", "^~") and path.startswith(loc.pattern)]
    longest = max(prefixes, key=lambda loc: len(loc.pattern), default=None)
    if longest is not None and longest.modifier == "^~":
        return longest
    for loc in locs:
        if loc.modifier in ("~", "~*"):
            flags = re.IGNORECASE if loc.modifier == "~*" else 0
            if re.search(loc.pattern, path, flags):
                return loc
    return longest


def map_value(http: Directive, source: str, target: str, value: str) -> str | None:
    """What ``map <source> <target>`` gives for ``value`` (regex entries with
    ``$1``-style captures; exact strings first, as nginx does)."""
    (mapping,) = [d for d in http.all("map") if d.args == [source, target]]
    entries = [(d.name, d.args[0] if d.args else "") for d in mapping.block or []]
    default = None
    for key, result in entries:
        if key == "default":
            default = result
        elif not key.startswith("~") and key == value:
            return result
    for key, result in entries:
        if key.startswith("~"):
            pattern, flags = (key[2:], re.IGNORECASE) if key.startswith("~*") else (key[1:], 0)
            found = re.search(pattern, value, flags)
            if found:
                # nginx's $1 is Python's \1.
                return found.expand(re.sub(r"\$(\d)", r"\\\1", result))
    return default


def seconds(value: str) -> float:
    """An nginx time (``90``, ``60s``, ``10m``, ``1h``) in seconds."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    assert match, f"not an nginx time: {value!r}"
    unit = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    return int(match[1]) * unit


def size_bytes(value: str) -> int:
    """An nginx size (``256m``, ``1g``, ``512k``, ``1024``) in bytes."""
    match = re.fullmatch(r"(\d+)([kKmMgG])?", value)
    assert match, f"not an nginx size: {value!r}"
    factor = {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match[2] and match[2].lower()]
    return int(match[1]) * factor
