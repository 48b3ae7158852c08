"""The access policy file: users and groups -> repository patterns -> actions (see docs/auth.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from portside.auth.access import ALL, CATALOG, REGISTRY, REPOSITORY, REPOSITORY_ACTIONS, Resource

ANONYMOUS: Final = "anonymous"
ANY_USER: Final = "*"


class PolicyError(ValueError):
    """The policy file cannot be used; the message says where."""


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """`*` within one path component, `**` across components, `?` one character."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + r"\Z")


@dataclass(frozen=True)
class Rule:
    subjects: frozenset[str]
    repositories: tuple[re.Pattern[str], ...]
    actions: frozenset[str]
    catalog: bool

    def applies_to(self, user: str | None, groups: frozenset[str]) -> bool:
        if user is None:
            return ANONYMOUS in self.subjects
        return ANY_USER in self.subjects or user in self.subjects or any(f"group:{g}" in self.subjects for g in groups)


class Policy:
    def __init__(self, rules: list[Rule], groups: dict[str, frozenset[str]]) -> None:
        self.rules = rules
        self._groups_of: dict[str, frozenset[str]] = {}
        members: dict[str, set[str]] = {}
        for group, users in groups.items():
            for user in users:
                members.setdefault(user, set()).add(group)
        self._groups_of = {user: frozenset(gs) for user, gs in members.items()}

    @property
    def has_anonymous_rules(self) -> bool:
        return any(ANONYMOUS in rule.subjects for rule in self.rules)

    def allowed(self, user: str | None, resource: Resource) -> frozenset[str]:
        """The actions `user` (None: anonymous) may take on `resource`."""
        groups = self._groups_of.get(user or "", frozenset())
        granted: set[str] = set()
        for rule in self.rules:
            if not rule.applies_to(user, groups):
                continue
            if resource.type == REGISTRY and resource.name == CATALOG:
                if rule.catalog:
                    granted.add(ALL)
            elif resource.type == REPOSITORY and any(p.match(resource.name) for p in rule.repositories):
                granted.update(rule.actions)
        return frozenset(granted)

    @classmethod
    def parse(cls, data: Any, source: str = "policy") -> Policy:
        if data is None:
            data = {}
        if not isinstance(data, dict) or set(data) - {"groups", "rules"}:
            raise PolicyError(f"{source}: expected a mapping with 'groups' and 'rules'")
        groups: dict[str, frozenset[str]] = {}
        for name, users in (data.get("groups") or {}).items():
            if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
                raise PolicyError(f"{source}: groups.{name} must be a list of user names")
            groups[str(name)] = frozenset(users)
        rules = []
        for i, raw in enumerate(data.get("rules") or []):
            where = f"{source}: rules[{i}]"
            if not isinstance(raw, dict) or set(raw) - {"subjects", "repositories", "actions", "catalog"}:
                raise PolicyError(f"{where}: keys are subjects, repositories, actions, catalog")
            subjects = raw.get("subjects") or []
            patterns = raw.get("repositories") or []
            actions = raw.get("actions") or []
            if not isinstance(subjects, list) or not subjects or not all(isinstance(s, str) for s in subjects):
                raise PolicyError(f"{where}: subjects must be a non-empty list")
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise PolicyError(f"{where}: repositories must be a list of patterns")
            if not isinstance(actions, list) or not all(a in (*REPOSITORY_ACTIONS, ALL) for a in actions):
                raise PolicyError(f"{where}: actions must be a list of pull, push, delete or *")
            expanded = frozenset(REPOSITORY_ACTIONS) if ALL in actions else frozenset(actions)
            rules.append(
                Rule(
                    subjects=frozenset(subjects),
                    repositories=tuple(glob_to_regex(p) for p in patterns),
                    actions=expanded,
                    catalog=bool(raw.get("catalog", False)),
                )
            )
        return cls(rules, groups)

    @classmethod
    def load(cls, path: str) -> Policy:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise PolicyError(f"cannot read policy {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise PolicyError(f"policy {path} is not valid YAML: {exc}") from None
        return cls.parse(data, path)


DENY_ALL = Policy([], {})
