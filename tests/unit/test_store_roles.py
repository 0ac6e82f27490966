"""The stages see the store through small role interfaces (store/base.py); the one store is core.Store. mypy checks
each role where app.py hands the store to a stage; this checks every role at once, signature by signature, so a
method renamed or changed on one side fails here too."""

from __future__ import annotations

import inspect
from typing import Protocol

from headrace.store import base
from headrace.store.core import Store

ROLES = [
    obj
    for obj in vars(base).values()
    if isinstance(obj, type) and issubclass(obj, Protocol) and obj is not Protocol  # type: ignore[arg-type]
]


def _members(role: type) -> dict[str, object]:
    found: dict[str, object] = {}
    for klass in reversed(role.__mro__):
        if klass in (object, Protocol) or klass.__module__ != base.__name__:
            continue
        found.update({k: v for k, v in vars(klass).items() if not k.startswith("_")})
        found.update(dict.fromkeys(getattr(klass, "__annotations__", {})))
    return found


def test_there_are_roles_for_both_stages():
    names = {role.__name__ for role in ROLES}
    assert {"EventLog", "DeliveryQueue", "JobBoard", "WorkerRegistry", "WorkerStore", "TestDeliveryLog"} <= names


def test_the_store_fills_every_role_with_the_same_signatures():
    problems = []
    for role in ROLES:
        for name, member in _members(role).items():
            if not hasattr(Store, name):
                problems.append(f"{role.__name__}.{name}: core.Store has no {name}")
            elif callable(member):
                want, have = inspect.signature(member), inspect.signature(getattr(Store, name))
                if str(want) != str(have):
                    problems.append(f"{role.__name__}.{name}{want} but core.Store.{name}{have}")
    assert problems == []
