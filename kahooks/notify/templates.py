"""Message subjects and bodies: jinja2 templates with strict variables and good defaults.

jinja2 is imported here only, and only by the delivery worker and `validate`:
never on a check's path. An undefined variable raises, so a typo in a template
is caught by validation, not discovered as an empty subject during an outage.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kahooks.errors import os_words
from kahooks.events.transition import Transition
from kahooks.files import safefs
from kahooks.settings.config import ChannelConfigError

if TYPE_CHECKING:
    from typing import Any

TEMPLATE_LIMIT = 1 << 20

DEFAULT_SUBJECT = (
    "{% if type == 'ALERT' %}[{{ host }}] {{ name }}: {{ 'cleared: ' if state == 'CLEARED' else '' }}{{ detail }}"
    "{% elif type == 'VS' %}[{{ host }}] virtual server {{ virtual_server }} "
    "{{ 'LOST its quorum' if state == 'DOWN' else 'has its quorum' }}"
    "{% elif type == 'RS' %}[{{ host }}] real server {{ real_server }} of {{ virtual_server }} is {{ state }}"
    "{% elif flapping %}[{{ host }}] {{ name }} flapped {{ events|length }} times, now {{ state }}"
    "{% else %}[{{ host }}] {{ name }} is {{ state }}"
    "{% if previous_state %} (was {{ previous_state }}){% endif %}{% endif %}"
)
DEFAULT_BODY = """\
{% if flapping -%}
{{ name }} changed state {{ events|length }} times between {{ events[0].when }} and {{ events[-1].when }}:
{% for change in events %}  {{ change.when }}  {{ change.state }} (priority {{ change.priority }})
{% endfor %}
{% endif -%}
{% if detail -%}
{{ 'Cleared:' if state == 'CLEARED' else 'Problem:' }}   {{ detail }}
{% endif -%}
Host:      {{ host }}
{% if type in ("VS", "RS") -%}
Virtual:   {{ virtual_server }}
{% if real_server %}Real:      {{ real_server }}
{% endif -%}
State:     {{ previous_state or "unknown" }} -> {{ state }}
{% else -%}
{{ type|capitalize }}:{{ " " * (10 - type|length) }}{{ name }}
State:     {{ previous_state or "unknown" }} -> {{ state }}
Priority:  {{ priority }}
VIPs:      {{ vips|join(", ") if vips else "none configured" }}
{% endif -%}
Time:      {{ when }}
Event id:  {{ id }}
"""


def environment() -> Any:
    """The one jinja2 set-up of kahooks: strict variables (a typo is a config error), no escaping."""
    import jinja2

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    # |tojson keeps the order and the text as written (webhook payloads).
    environment.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}
    return environment


class MessageTemplates:
    """A channel's subject and body templates, compiled once and checked against a sample event."""

    def __init__(self, settings: dict[str, Any], base: Path, default_body: str = DEFAULT_BODY,
                 default_subject: str = DEFAULT_SUBJECT) -> None:
        import jinja2

        jinja = environment()
        self.sources = {}
        for part, default in (("subject", default_subject), ("body", default_body)):
            source = settings.get(part)
            file_key = f"{part}_file"
            if source is not None and file_key in settings:
                raise ChannelConfigError(part, f"give {part} or {file_key}, not both")
            if file_key in settings:
                path = base / str(settings[file_key])
                try:
                    # Non-blocking, regular files only, capped: a FIFO in its place must not hang a reload.
                    source = safefs.read_bytes(path, TEMPLATE_LIMIT).decode()
                except safefs.UnsafeFile as exc:
                    raise ChannelConfigError(file_key, str(exc)) from None
                except OSError as exc:
                    raise ChannelConfigError(file_key, f"{path}: {os_words(exc)}") from None
                except UnicodeDecodeError as exc:
                    raise ChannelConfigError(file_key, f"{path}: not UTF-8 text ({exc.reason})") from None
            elif source is not None and not isinstance(source, str):
                raise ChannelConfigError(part, "must be a template string")
            self.sources[part] = source if source is not None else default
        keys = {part: (f"{part}_file" if f"{part}_file" in settings else part) for part in ("subject", "body")}
        compiled = {}
        for part in ("subject", "body"):
            try:
                compiled[part] = jinja.from_string(self.sources[part])
            except jinja2.TemplateSyntaxError as exc:
                raise ChannelConfigError(keys[part], f"template error on line {exc.lineno}: {exc.message}") from None
        self.subject, self.body = compiled["subject"], compiled["body"]
        # Each part rendered on its own, so a mistake is blamed on the key that holds it.
        for sample in (sample_context(False), sample_context(True)):
            for part in ("subject", "body"):
                try:
                    compiled[part].render(sample)
                except jinja2.UndefinedError as exc:
                    raise ChannelConfigError(keys[part], f"template uses an undefined variable: {exc.message}") \
                        from None
                except jinja2.TemplateError as exc:
                    raise ChannelConfigError(keys[part], f"template error: {exc}") from None
                except Exception as exc:  # `{{ name + 1 }}`: Python's own TypeError, raised by the render
                    raise ChannelConfigError(keys[part], f"template fails on a sample event: "
                                                         f"{type(exc).__name__}: {exc}") from None

    def render(self, context: dict[str, Any]) -> tuple[str, str]:
        """(subject, body); the subject is always one line."""
        subject = " ".join(self.subject.render(context).split())
        return subject, self.body.render(context)


def sample_context(flapping: bool) -> dict[str, Any]:
    """The variables `validate` renders every template with (from the one Transition schema)."""
    return Transition.sample(flapping).context()
