"""The digest's settings refuse values that cannot work, at start."""

import pytest

from core.tests.test_settings import _start


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"INBOX_DIGEST_TIME": "9am"}, "INBOX_DIGEST_TIME='9am' is not a time of day"),
        ({"INBOX_DIGEST_TIME": "24:00"}, "is not a time of day: write HH:MM"),
        ({"INBOX_DIGEST_CHANNEL": "telegram"}, "INBOX_DIGEST_TO go together"),
        ({"INBOX_DIGEST_TO": "-100123"}, "INBOX_DIGEST_TO go together"),
        ({"INBOX_DIGEST_EMAILS": "ops@example.com,oops"}, "'oops' is not an email"),
    ],
)
def test_bad_digest_settings_stop_the_start(env: dict[str, str], says: str) -> None:
    started = _start(**env)
    assert started.returncode != 0
    assert says in started.stderr


def test_good_digest_settings_start() -> None:
    started = _start(
        INBOX_DIGEST_TIME="07:30",
        INBOX_DIGEST_CHANNEL="telegram",
        INBOX_DIGEST_TO="-100123",
        INBOX_DIGEST_EMAILS="ops@example.com, lead@example.com",
        EMAIL_URL="smtp+tls://user:pass@mail.example.com:587",
    )
    assert started.returncode == 0, started.stderr
