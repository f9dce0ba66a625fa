"""kahooks.output.redact: what it hides, what it keeps for the operator, and that hiding twice changes nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kahooks.output import redact

CASES = [
    # (text, what must go, what must stay)
    ("URL 'http://user:PASSWORD@127.0.0.1:0/': bad port", "PASSWORD", "http://user:***@127.0.0.1:0/"),
    ("https://ghp_TOKEN1234@git.example.com/repo", "ghp_TOKEN1234", "https://***@git.example.com/repo"),
    ("GET https://api.example.com/v1?a=1&token=abc123 (retry)", "abc123", "?a=1&token=*** (retry)"),
    ("https://h/x?Access_Token=t1&API_KEY=k1&apikey=k2&sig=s1&X-Amz-Signature=s2&secret=s3&password=p1",
     "t1 k1 k2 s1 s2 s3 p1", "https://h/x?Access_Token=***&API_KEY=***"),
    ("https://h/cb#access_token=frag1&state=ok", "frag1", "state=ok"),
    ("posting to https://hooks.slack.com/services/T0001/B0001/XXXXsecretXXXX: 404", "T0001 XXXXsecretXXXX",
     "https://hooks.slack.com/***: 404"),
    ("https://discord.com/api/webhooks/1234/abcDEF", "abcDEF", "https://discord.com/***"),
    ("https://acme.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/xyz", "IncomingWebhook/123",
     "https://acme.webhook.office.com/***"),
    ("ping https://hc-ping.com/0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5b", "https://hc-ping.com/***"),
    ("http://chat.local/hooks/xkb7ps5u3fbhxqp1wn8q6iijbr failed", "xkb7ps5u3fbhxqp1wn8q6iijbr",
     "http://chat.local/hooks/*** failed"),
    ("--header 'Authorization: Bearer abc.def'", "abc.def", "Authorization: Bearer ***"),
    ("Proxy-Authorization: Basic dXNlcjpwdw==", "dXNlcjpwdw==", "Proxy-Authorization: Basic ***"),
    ("X-Api-Key: s3cr3t and more", "s3cr3t", "X-Api-Key: *** and more"),
    ("PRIVATE-TOKEN: glpat-xyz", "glpat-xyz", "PRIVATE-TOKEN: ***"),
    ("Cookie: a=b; sid=c then http://x/", "sid=c", "Cookie: *** then http://x/"),
    ("{'password': 'hunter2', 'user': 'bob'}", "hunter2", "'user': 'bob'"),
    ('{"api_key": "zz9"}', "zz9", '"api_key": "***"'),
    ('token="quoted value" next', "quoted value", "token=*** next"),
    ("--password=abc --client-secret=def", "abc def", "--password=*** --client-secret=***"),
]

KEPT = [  # nothing to hide: the same text back
    "haproxy running (pids 12, 13)",
    "connect auth-proxy:8443 refused",
    "http://127.0.0.1:8080/health returned 503",
    "keepalived got a signal; monkey business",
    "checks.web: run = ka-check-http --timeout 0.5",
]


@pytest.mark.parametrize("text, gone, kept", CASES)
def test_text_hides_the_secret_and_keeps_the_rest(text: str, gone: str, kept: str) -> None:
    shown = redact.text(text)
    for secret in gone.split():
        assert secret not in shown, (text, shown)
    assert kept in shown, (text, shown)
    assert redact.text(shown) == shown  # hiding twice (status.json of a redacted run line) changes nothing


@pytest.mark.parametrize("text", KEPT)
def test_text_leaves_plain_lines_alone(text: str) -> None:
    assert redact.text(text) == text


def test_a_user_name_alone_is_taken_for_a_token() -> None:
    assert redact.text("https://user@example.com/") == "https://***@example.com/"


def test_words_hide_header_values_option_secrets_and_url_passwords() -> None:
    argv = ["ka-check-http", "--header", "Authorization: Bearer tok1", "--header=X-Api-Key: tok2",
            "-H", "X-Auth-Token tok3", "--password", "tok4", "-u", "bob:tok5", "--api-key=tok6",
            "http://a:tok7@h/?token=tok8", "--timeout", "1", "--header", "Accept: text/plain"]
    shown = redact.words(argv)
    assert not any(f"tok{n}" in word for word in shown for n in range(1, 9)), shown
    assert shown[-4:] == ["--timeout", "1", "--header", "Accept: text/plain"]
    assert "Authorization: ***" in shown and "bob:***" in shown and "http://a:***@h/?token=***" in shown


def test_words_hide_a_header_value_given_as_words_after_its_name() -> None:
    # curl -H 'X-Api-Key:' VALUE in an exec check's argv: the name is a word, its value the next one (found by
    # a review: status.json showed the value).
    shown = redact.words(["curl", "-H", "X-Api-Key:", "tok1", "-H", "Authorization:", "Bearer", "tok2",
                          "-H", "Accept:", "text/plain", "http://h/"])
    assert shown == ["curl", "-H", "X-Api-Key:", "***", "-H", "Authorization:", "***", "***",
                     "-H", "Accept:", "text/plain", "http://h/"]


def test_in_argv_hides_a_word_a_usage_error_quotes() -> None:
    message = "ka-check-http: --header 'X-Api-Key abc123': expected 'Name: value'"
    shown = redact.in_argv(message, ["--header", "X-Api-Key abc123", "http://h/"])
    assert "abc123" not in shown and "'X-Api-Key ***'" in shown


def test_a_line_with_nothing_to_hide_never_imports_re() -> None:
    """A check's line goes through text(): one with no hint of a secret must cost no import."""
    script = ("import sys; from kahooks.output import redact; redact.text('haproxy running (pid 1)'); "
              "redact.text('127.0.0.1:80: connection refused'); print('re' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "False", out
