"""Engineering playbooks (kernels/skills/<name>/SKILL.md): load, list, search by relevance, bundle.

Search is BM25F: term frequencies are length-normalised per field (name, tags, ops, description, body) and
weighted (a name or tag hit counts more than body text) before one saturation, with light stemming, so
"quantize fp8 matmul" ranks the fp8 playbook first and a word that appears everywhere weighs nothing.
No torch import: the CLI and the forge's agent prompt builder use this directly.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "skills"
FIELD_WEIGHTS = {"name": 4.0, "tags": 3.0, "applies_to": 3.0, "description": 2.0, "body": 1.0}
K1, B = 6.0, 0.75  # k1 scaled up with the field weights: a weighted tf of ~10 should not saturate yet
_WORD = re.compile(r"[a-z0-9]+")


class SkillError(ValueError):
    pass


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    category: str
    tags: tuple[str, ...]
    applies_to: tuple[str, ...]
    hardware: tuple[str, ...]
    body: str
    path: Path = field(compare=False)

    @property
    def text(self) -> str:
        """The whole playbook as it appears in a prompt."""
        return f"# Playbook: {self.name}\n{self.description}\n\n{self.body.strip()}\n"


def _stem(word: str) -> str:
    for suffix in ("ization", "isation", "izing", "ising", "ations", "ation", "ings", "ing", "ised", "ized", "ise", "ize", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def tokens(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower().replace("_", " ").replace("-", " "))]


def parse(path: Path) -> Skill:
    raw = path.read_text()
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", raw, re.S)
    if not match:
        raise SkillError(f"{path}: no front matter")
    meta = yaml.safe_load(match.group(1)) or {}
    missing = {"name", "description", "category"} - set(meta)
    if missing:
        raise SkillError(f"{path}: front matter lacks {', '.join(sorted(missing))}")
    return Skill(name=str(meta["name"]), description=str(meta["description"]), category=str(meta["category"]),
                 tags=tuple(meta.get("tags") or ()), applies_to=tuple(meta.get("applies_to") or ()),
                 hardware=tuple(meta.get("hardware") or ()), body=match.group(2), path=path)


class Library:
    def __init__(self, skills: list[Skill]) -> None:
        self.skills = {s.name: s for s in skills}
        self._fields = {s.name: {f: Counter(tokens(text)) for f, text in self._field_texts(s).items()} for s in skills}
        count = max(len(skills), 1)
        self._avg_len = {f: sum(sum(doc[f].values()) for doc in self._fields.values()) / count or 1.0
                         for f in FIELD_WEIGHTS}
        self._df = Counter(term for doc in self._fields.values() for term in set().union(*doc.values()))

    @classmethod
    def load(cls, directory: Path | str | None = None) -> Library:
        root = Path(directory or os.environ.get("TMX_SKILLS_DIR") or DEFAULT_DIR)
        if not root.is_dir():
            raise SkillError(f"no skills directory at {root} (set TMX_SKILLS_DIR)")
        return cls([parse(p) for p in sorted(root.glob("*/SKILL.md"))])

    @staticmethod
    def _field_texts(skill: Skill) -> dict[str, str]:
        return {"name": skill.name, "tags": " ".join(skill.tags), "applies_to": " ".join(skill.applies_to),
                "description": skill.description, "body": skill.body}

    def list(self, category: str | None = None) -> list[Skill]:
        return [s for name, s in sorted(self.skills.items()) if category in (None, s.category)]

    def get(self, name: str) -> Skill:
        try:
            return self.skills[name]
        except KeyError:
            raise SkillError(f"no skill {name!r}; known: {', '.join(sorted(self.skills))}") from None

    def search(self, query: str, limit: int = 5) -> list[tuple[Skill, float]]:
        """Skills ranked by BM25 score for the query; only those matching at least one term."""
        n = len(self._fields)
        scores = {}
        for name, fields in self._fields.items():
            score = 0.0
            for term in set(tokens(query)):
                if not self._df[term]:
                    continue
                tf = sum(weight * fields[f][term] / (1 - B + B * sum(fields[f].values()) / self._avg_len[f])
                         for f, weight in FIELD_WEIGHTS.items())
                idf = math.log(1 + (n - self._df[term] + 0.5) / (self._df[term] + 0.5))
                score += idf * tf / (K1 + tf)
            if score > 0:
                scores[name] = score
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [(self.skills[name], score) for name, score in ranked]

    def for_op(self, op: str) -> list[Skill]:
        """Playbooks that name the op, op-specific ones first."""
        hits = [s for s in self.skills.values() if op in s.applies_to]
        return sorted(hits, key=lambda s: (s.category != "op", len(s.applies_to), s.name))

    def bundle(self, names: list[str], max_chars: int = 12000) -> str:
        """One prompt block of the named playbooks in order, at most max_chars long. A playbook that does not
        fit whole is cut at a line boundary and marked; the ones after it are listed as omitted."""
        skills = [self.get(name) for name in names]
        reserve = 60 + sum(len(s.name) + 2 for s in skills)  # room for the omitted list
        parts: list[str] = []
        used = 0
        for index, skill in enumerate(skills):
            text = skill.text
            room = max_chars - reserve - used
            if len(text) + 1 <= room:
                parts.append(text)
                used += len(text) + 1
                continue
            rest = skills[index:]
            if room > 200:
                parts.append(text[: room - 40].rsplit("\n", 1)[0] + "\n[... cut to fit the size budget]\n")
                rest = skills[index + 1:]
            if rest:
                parts.append(f"[omitted for size: {', '.join(s.name for s in rest)}]\n")
            break
        return "\n".join(parts)
