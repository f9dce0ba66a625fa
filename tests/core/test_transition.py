"""One schema: templates, the webhook payload, the exec environment and syslog data agree."""

from __future__ import annotations

from kahooks.event import Event
from kahooks.templates import sample_context
from kahooks.transition import Transition


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
