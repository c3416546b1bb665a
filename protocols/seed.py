"""The seed protocols of the three studies, shipped as a fixture and installed through the services.

``protocols/fixtures/seed_protocols.json`` holds the formulation catalogue and, per protocol, its
phases, drug components and supportive requirements in the format ``protocol_create`` reads. It is
installed with ``python manage.py load_protocols`` (and by the demo loaders), as the system account,
with a history row for every record. Installing is idempotent: a protocol code that exists in any
version is left alone, so a site's own later versions are never overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.db import transaction

from accounts.models import User
from accounts.services import system_user

from .choices import ProtocolStatus
from .models import Protocol
from .services import formulation_ensure, protocol_activate, protocol_create

SEED_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "seed_protocols.json"
REASON = "Seed protocol (protocols/fixtures/seed_protocols.json)"


def read_fixture(path: Path = SEED_FIXTURE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


@transaction.atomic
def ensure_seed_protocols(*, actor: User | None = None, path: Path = SEED_FIXTURE) -> dict[str, Protocol]:
    """Install what is missing of the fixture; return the active version of each of its protocols."""
    if actor is None:
        actor = system_user()
    fixture = read_fixture(path)
    for spec in fixture.get("formulations", ()):
        formulation_ensure(spec=spec, actor=actor, reason=REASON)
    installed: dict[str, Protocol] = {}
    for spec in fixture["protocols"]:
        if not Protocol.objects.filter(code=spec["code"]).exists():
            protocol = protocol_create(spec=spec, actor=actor, reason=REASON)
            protocol_activate(protocol=protocol, actor=actor, reason=REASON)
        active = active_version(spec["code"])
        assert active is not None, "installed and activated just above, or installed before"
        installed[spec["code"]] = active
    return installed


def active_version(code: str) -> Protocol | None:
    return Protocol.objects.filter(code=code, status=ProtocolStatus.ACTIVE).first()


def seed_protocol(code: str, *, actor: User | None = None) -> Protocol:
    """The active version of a seed protocol, installing the seed protocols first if it is missing."""
    protocol = active_version(code)
    if protocol is None:
        protocol = ensure_seed_protocols(actor=actor)[code]
    if protocol is None:
        raise LookupError(f"The protocol {code!r} has no active version.")
    return protocol
