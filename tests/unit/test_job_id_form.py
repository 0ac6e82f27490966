"""Job ids are uuid5 of the delivery's key under JOB_ID_NAMESPACE, computed without the UUID object: the same
string as uuid.uuid5 for every kind of key (Windmill keeps the ids it was given, and retries reuse them)."""

from __future__ import annotations

import random
import uuid

from headrace import models
from headrace.models import JOB_ID_NAMESPACE, job_id_for


def test_job_ids_are_uuid5_strings_of_the_key():
    rng = random.Random(5)
    alphabet = "abcXYZ019_-./:@ éü漢😀\x1f"
    for _ in range(3000):
        parts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(5)]
        generation = rng.randrange(0, 1000)
        key = "\x1f".join((*parts, str(generation)))
        assert job_id_for(*parts, generation) == str(uuid.uuid5(JOB_ID_NAMESPACE, key))


def test_the_id_is_built_without_a_uuid_object(monkeypatch):
    def refuse(*args: object) -> uuid.UUID:
        raise AssertionError("uuid.uuid5 called per delivery")

    monkeypatch.setattr(models.uuid, "uuid5", refuse)
    assert job_id_for("dep", "https://wm/w/acme", "dodo", "msg_1", "payments", 0).count("-") == 4
