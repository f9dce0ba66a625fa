"""One schema: templates, the webhook payload, the exec environment and syslog data agree."""

from __future__ import annotations

import dataclasses

from kahooks.events.event import Event
from kahooks.events.transition import EVENT_ONLY, FIELDS, Transition
from kahooks.notify.templates import sample_context


def burst() -> Transition:
    events = [Event.new("INSTANCE", "VI_1", "BACKUP", 90, "test"), Event.new("INSTANCE", "VI_1", "MASTER", 100, "test")]
    alert = Event.alert("VI_1", "rebind: nothing listens", "rebind")
    return Transition.of("lb1", ["192.0.2.10/24"], [*events, alert], "FAULT")


def test_every_view_is_made_of_the_same_fields() -> None:
    transition = burst()
    fields = transition.fields()
    assert set(transition.context()) == set(fields) | {"instance"}
    assert fields["detail"] == "rebind: nothing listens"  # the webhook payload once dropped it
    environment = transition.environment()
    assert environment["KAHOOKS_DETAIL"] == fields["detail"] and environment["KAHOOKS_STATE"] == fields["state"]
    assert environment["KAHOOKS_TRANSITIONS"] == str(len(fields["events"])) == "3"
    assert environment["KAHOOKS_VIPS"] == "192.0.2.10/24" and fields["flapping"] is True
    data = transition.structured_data()
    assert (data["instance"], data["previous"], data["event"]) == ("VI_1", "FAULT", fields["id"])
    assert [change["previous_state"] for change in fields["events"]] == ["FAULT", "BACKUP", "MASTER"]


def test_validate_renders_against_the_same_schema() -> None:
    for flapping in (False, True):
        assert set(sample_context(flapping)) == set(burst().context())


def test_every_field_of_the_event_is_declared_once() -> None:
    """A field added to the event or the transition must say how each view spells it (or that none carries it)."""
    declared = [field.name for field in FIELDS]
    assert sorted(declared) == sorted(field.name for field in dataclasses.fields(Transition))
    assert set(Event.__slots__) <= set(declared) | set(EVENT_ONLY)
    assert not set(EVENT_ONLY) & set(declared)


def test_the_environment_and_structured_data_come_from_the_declared_fields() -> None:
    lvs = Transition.of("lb1", [], [Event.lvs("RS", "[10.0.0.1]:tcp:80", "[192.0.2.50]:tcp:80", "DOWN", "test")], "UP")
    wire = Transition.of("lb1", [], [Event.alert("VI_1", "wire blocked", "test", topic="wire blocked")], "MASTER")
    for transition in (burst(), lvs, wire, Transition.sample(False)):
        environment = transition.environment()
        assert environment == {f"KAHOOKS_{field.env}": field.text(transition) for field in FIELDS if field.env}
        data = transition.structured_data()
        assert list(data) == [field.sd for field in FIELDS
                              if field.sd and (field.text(transition) or not field.sd_when_set)]
    data = lvs.structured_data()
    assert (data["virtual_server"], data["real_server"], data["previous"]) == ("[192.0.2.50]:tcp:80",
                                                                               "[10.0.0.1]:tcp:80", "UP")
    assert "topic" not in data and "virtual_server" not in burst().structured_data()
    assert wire.structured_data()["topic"] == wire.environment()["KAHOOKS_TOPIC"] == "wire blocked"
