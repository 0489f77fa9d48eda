"""A small reader of Dockerfiles: instructions grouped into named stages."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    text: str  # the rest, continuation lines joined

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD / ENTRYPOINT / RUN, if it is one."""
        body = self.text
        if self.keyword == "HEALTHCHECK":
            body = body.split(" CMD ", 1)[1] if " CMD " in f" {body}" else ""
        body = body.strip()
        if body.startswith("["):
            value = json.loads(body)
            assert isinstance(value, list)
            return [str(v) for v in value]
        return None

    def flags(self) -> dict[str, str]:
        """``--name=value`` options before the arguments (COPY --from=..., RUN --mount=...)."""
        out = {}
        for word in shlex.split(self.text):
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            out.setdefault(name, value)
            if name == "mount":
                out.setdefault("mounts", "")
                out["mounts"] += value + "\n"
        return out


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages in order."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert match, f"cannot read FROM {rest!r}"
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), match[1])
            stages.append(Stage(match[2] or str(len(stages)), base))
        elif not stages:
            if keyword == "ARG":
                name, _, default = rest.partition("=")
                args[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, rest))
    return args, stages
