"""Password redaction and target descriptions (no server needed)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from leasepool._redis.url import describe_client, redact_url, scrub


def test_a_long_password_is_scrubbed_everywhere_plain_and_percent_encoded() -> None:
    secret = "s3cr/et pass"
    encoded = "s3cr%2Fet%20pass"
    text = f"auth failed for {secret}; url redis://u:{encoded}@h"
    out = scrub(text, secret)
    assert "s3cr" not in out
    assert out.count("***") == 2


def test_a_short_password_is_scrubbed_only_where_it_stands_alone() -> None:
    out = scrub("Error: invalid password a for user a at redis://a:a@host", "a")
    # Words that merely contain the letter stay readable...
    assert out.startswith("Error: invalid password *** for user *** at redis://***:***@host")
    assert "password" in out and "Error" in out


def test_a_short_password_inside_a_word_is_left_alone_but_never_printed_alone() -> None:
    assert scrub("pass=ab;", "ab") == "pass=***;"
    assert scrub("abc", "ab") == "abc"


@pytest.mark.parametrize("secret", [None, ""])
def test_no_secret_changes_nothing(secret: str | None) -> None:
    assert scrub("unchanged text", secret) == "unchanged text"


def test_redact_url_hides_userinfo_and_query_passwords() -> None:
    assert redact_url("redis://u:pw@h:1/0?password=pw2") == "redis://u:***@h:1/0?password=***"


async def test_describe_client_names_tls_targets_rediss() -> None:
    tls = aioredis.Redis.from_url("rediss://:pw@127.0.0.1:6390/2")
    plain = aioredis.Redis.from_url("redis://:pw@127.0.0.1:6391/0")
    try:
        assert describe_client(tls) == "rediss://127.0.0.1:6390/2"
        assert describe_client(plain) == "redis://127.0.0.1:6391/0"
    finally:
        await tls.aclose()
        await plain.aclose()
