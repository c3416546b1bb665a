"""The seed protocols load and validate; a protocol cap never exceeds the drug's absolute cap; versions."""

import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction

from accounts.services import system_user
from protocols.choices import EndRule, ProtocolStatus
from protocols.models import Component, Formulation, Phase, Protocol
from protocols.seed import SEED_FIXTURE, ensure_seed_protocols, read_fixture
from protocols.services import (
    protocol_activate,
    protocol_create,
    protocol_new_revision,
    protocol_retire,
    protocol_spec,
)
from registry.choices import DiseaseArea, IntrathecalDrug
from registry.dosing import INTRATHECAL_DOSE_LIMITS
from tests.protocols.conftest import start

pytestmark = pytest.mark.django_db


def spec(code="test-protocol", **changes):
    base = {
        "code": code,
        "revision": 1,
        "name": "Test protocol",
        "disease_area": DiseaseArea.LM,
        "phases": [
            {
                "order": 1,
                "name": "Weekly",
                "cycle_days": 7,
                "days_in_cycle": "0",
                "end_rule": "fixed",
                "injection_count": 3,
                "min_interval_hours": 96,
            }
        ],
        "components": [
            {"phase": None, "drug": "methotrexate", "rule": "fixed", "dose_mg": "12", "cap_mg": "12"}
        ],
    }
    return base | changes


def test_the_seed_fixture_loads_validates_and_is_idempotent(seeds):
    assert set(seeds) == {"npsle-pumch", "lm-pemetrexed", "lm-methotrexate", "icans-idm"}
    for protocol in seeds.values():
        assert protocol.status == ProtocolStatus.ACTIVE and protocol.revision == 1
        assert protocol.completeness_errors() == []
        for record in [protocol, *protocol.phases.all(), *protocol.components.all()]:
            record.full_clean()
            assert {row.history_user.username for row in record.history.all()} == {"registry-system"}
    assert Formulation.objects.count() == len(read_fixture()["formulations"])
    counts = (Protocol.objects.count(), Phase.objects.count(), Component.objects.count())
    again = ensure_seed_protocols()
    assert (
        again == seeds
        and (Protocol.objects.count(), Phase.objects.count(), Component.objects.count()) == counts
    )


def test_the_seed_protocols_say_what_the_studies_did(seeds):
    npsle = protocol_spec(seeds["npsle-pumch"])
    assert [(c["drug"], c["dose_mg"], c["optional"]) for c in npsle["components"]] == [
        ("dexamethasone", "10.00", False),
        ("methotrexate", "10.00", True),
    ]
    assert npsle["phases"][0] | {"description": ""} == {
        "order": 1,
        "name": "Weekly injections",
        "cycle_days": 7,
        "days_in_cycle": "0",
        "end_rule": EndRule.BY_RESPONSE,
        "injection_count": 6,
        "gap_before_days": None,
        "min_interval_hours": 120,
        "window_days": 1,
        "description": "",
    }
    lm = seeds["lm-pemetrexed"]
    pemetrexed = lm.components.get(drug=IntrathecalDrug.PEMETREXED)
    assert (pemetrexed.dose_mg, pemetrexed.step_mg, pemetrexed.cap_mg, pemetrexed.step_back_on_toxicity) == (
        10,
        5,
        50,
        True,
    )
    assert sorted((r.category, r.lead_min_days, r.repeat_days) for r in lm.supportive_requirements.all()) == [
        ("folic_acid", 7, None),
        ("vitamin_b12", 7, 63),
    ]
    assert [p.end_rule for p in lm.ordered_phases()] == ["fixed", "fixed", "until_stopped"]
    assert seeds["lm-methotrexate"].components.get(drug=IntrathecalDrug.METHOTREXATE).dose_mg == 12
    assert seeds["icans-idm"].ordered_phases()[0].injection_count == 3


def test_the_load_protocols_command(tmp_path):
    out = io.StringIO()
    call_command("load_protocols", stdout=out)
    assert "lm-pemetrexed: LM: intrathecal pemetrexed (version 1)" in out.getvalue()
    broken = tmp_path / "broken.json"
    fixture = read_fixture(SEED_FIXTURE)
    fixture["protocols"] = [
        spec(
            "too-high", components=[{"drug": "pemetrexed", "rule": "fixed", "dose_mg": "10", "cap_mg": "60"}]
        )
    ]
    broken.write_text(__import__("json").dumps(fixture), encoding="utf-8")
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="absolute intrathecal cap of 50 mg"):
        call_command("load_protocols", fixture=broken, stdout=io.StringIO())
    assert not Protocol.objects.filter(code="too-high").exists()


@pytest.mark.parametrize("limit", list(INTRATHECAL_DOSE_LIMITS.values()), ids=lambda limit: limit.drug)
def test_a_protocol_cap_above_the_absolute_cap_is_refused(limit):
    actor = system_user()
    too_high = limit.max_mg + Decimal("0.5")
    components = [{"drug": limit.drug, "rule": "fixed", "dose_mg": "1", "cap_mg": str(too_high)}]
    with pytest.raises(ValidationError) as refused:
        protocol_create(spec=spec(components=components), actor=actor, reason="test")
    assert "absolute intrathecal cap" in refused.value.message_dict["components.0.cap_mg"][0]
    assert not Protocol.objects.exists(), "all or nothing"
    # The database refuses it too, whatever the route.
    protocol = protocol_create(spec=spec(), actor=actor, reason="test")
    component = protocol.components.get()
    component.drug, component.cap_mg = limit.drug, too_high
    with pytest.raises(IntegrityError), transaction.atomic():
        Component.save_base(component)
    component.cap_mg = limit.max_mg
    component.full_clean()


def test_dose_rules_are_checked():
    actor = system_user()
    cases = {
        "components.0.dose_mg": {"drug": "methotrexate", "rule": "fixed", "dose_mg": "14", "cap_mg": "12"},
        "components.0.step_mg": {"drug": "pemetrexed", "rule": "escalating", "dose_mg": "10", "cap_mg": "50"},
        "components.0.drug": {"drug": "other", "rule": "fixed", "dose_mg": "1", "cap_mg": "1"},
    }
    for key, component in cases.items():
        with pytest.raises(ValidationError) as refused:
            protocol_create(spec=spec(components=[component]), actor=actor, reason="test")
        assert key in refused.value.message_dict, refused.value.message_dict
    phases = [dict(spec()["phases"][0], days_in_cycle="0,9")]
    with pytest.raises(ValidationError, match="within the 7-day cycle"):
        protocol_create(spec=spec(phases=phases), actor=actor, reason="test")
    phases = [dict(spec()["phases"][0], end_rule="until_stopped")]
    with pytest.raises(ValidationError, match="leave it empty"):
        protocol_create(spec=spec(phases=phases), actor=actor, reason="test")


def test_only_a_complete_draft_is_activated_and_it_retires_the_previous_version(seeds, npsle_patient, nurse):
    actor = system_user()
    empty = protocol_create(spec=spec("empty", phases=[], components=[]), actor=actor, reason="test")
    with pytest.raises(ValidationError, match="at least one phase"):
        protocol_activate(protocol=empty, actor=actor, reason="test")

    old = seeds["npsle-pumch"]
    course = start(npsle_patient, old, nurse)
    draft = protocol_new_revision(protocol=old, actor=actor, reason="MTX 12 mg")
    assert (draft.revision, draft.status, draft.revision_note) == (2, ProtocolStatus.DRAFT, "MTX 12 mg")
    assert protocol_spec(draft)["components"] == protocol_spec(old)["components"]
    mtx = draft.components.get(drug=IntrathecalDrug.METHOTREXATE)
    mtx.dose_mg = mtx.cap_mg = Decimal("12")
    mtx.full_clean()
    mtx.save()
    protocol_activate(protocol=draft, actor=actor, reason="new version")
    old.refresh_from_db()
    assert old.status == ProtocolStatus.RETIRED
    course.refresh_from_db()
    assert course.protocol == old, "a course keeps the version it was planned with"


def test_an_active_protocol_cannot_change(seeds):
    protocol = seeds["lm-pemetrexed"]
    protocol.summary = "changed"
    with pytest.raises(ValidationError, match="create a new version"):
        protocol.full_clean()
    component = protocol.components.first()
    component.note = "changed"
    with pytest.raises(ValidationError, match="create a new version"):
        component.full_clean()
    protocol_retire(protocol=Protocol.objects.get(pk=protocol.pk), actor=system_user(), reason="test")
    assert Protocol.objects.get(pk=protocol.pk).status == ProtocolStatus.RETIRED


def test_a_missing_number_is_refused_by_the_form_rules_and_the_database():
    """A NULL makes a CHECK condition unknown, which the database lets through: the constraints
    spell out IS NOT NULL, so an escalation without a step or a fixed phase without a count fails."""
    actor = system_user()
    phases = [dict(spec()["phases"][0], injection_count=None)]
    with pytest.raises(ValidationError, match="Give the number of injections"):
        protocol_create(spec=spec(phases=phases), actor=actor, reason="test")
    protocol = protocol_create(spec=spec(), actor=actor, reason="test")
    component = protocol.components.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        Component._base_manager.filter(pk=component.pk).update(rule="escalating", step_mg=None)
    phase = protocol.phases.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        Phase._base_manager.filter(pk=phase.pk).update(injection_count=None)
