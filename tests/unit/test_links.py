"""Tracked-link codes, what counts as a bot, and where a link leads (``ulak.links``)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.errors import TemplateError
from ingest.spec import CampaignSpec
from ulak import links


def test_codes_are_base62_of_the_length_asked_and_all_different() -> None:
    codes = links.new_codes(50_000, 8).to_pylist()
    assert all(len(c) == 8 and links.CODE.fullmatch(c.encode()) for c in codes)
    assert len(set(codes)) == len(codes)


def test_every_character_is_as_likely_as_any_other() -> None:
    """A byte taken mod 62 would favour the first 8 characters by 5/4: the codes must not."""
    chars = Counter("".join(links.new_codes(40_000, 10).to_pylist()))
    assert set(chars) == set(links.ALPHABET.decode())
    expected = 400_000 / 62
    assert max(abs(n - expected) for n in chars.values()) < 0.06 * expected


@given(n=st.integers(0, 300), length=st.integers(8, 32), seed=st.binary(min_size=1, max_size=8))
def test_codes_from_any_bytes_are_whole_and_valid(n: int, length: int, seed: bytes) -> None:
    """Even from bytes that are mostly above the cut (dropped), every code comes out whole."""

    def randbytes(k: int) -> bytes:
        return (seed * (k // len(seed) + 1))[:k] if any(b < 248 for b in seed) else bytes(k)

    codes = links.new_codes(n, length, randbytes=randbytes).to_pylist()
    assert len(codes) == n and all(len(c) == length and links.CODE.fullmatch(c.encode()) for c in codes)


@pytest.mark.parametrize(
    ("method", "agent", "bot"),
    [
        (
            "GET",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
            False,
        ),
        (
            "GET",
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36",
            False,
        ),
        ("HEAD", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)", True),
        ("GET", "", True),
        ("GET", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
        ("GET", "WhatsApp/2.23.20.0 A", True),
        ("GET", "TelegramBot (like TwitterBot)", True),
        ("GET", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", True),
        ("GET", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
        ("GET", "curl/8.4.0", True),
    ],
)
def test_previews_scanners_and_head_are_bots_people_are_not(method: str, agent: str, bot: bool) -> None:
    assert links.is_bot(method, agent) is bot


@given(
    st.lists(
        st.one_of(st.sampled_from(links.BOT_AGENTS), st.text(max_size=12)).map(
            lambda t: t.upper() if len(t) % 2 else t
        ),
        max_size=5,
    )
)
def test_one_scan_for_the_known_agents_says_what_a_scan_for_each_would(words: list[str]) -> None:
    agent = " ".join(words) or "x"
    assert links.is_bot("GET", agent) == (
        not agent.strip() or any(n in agent.lower() for n in links.BOT_AGENTS)
    )


def test_utm_parameters_are_added_and_the_links_own_are_kept() -> None:
    utm = {"utm_source": "sms", "utm_campaign": "kasım 2026"}
    assert links.target_url("https://shop.example/p?id=7", utm) == (
        "https://shop.example/p?id=7&utm_source=sms&utm_campaign=kas%C4%B1m+2026"
    )
    assert links.target_url("https://shop.example/?utm_source=mail", utm) == (
        "https://shop.example/?utm_source=mail&utm_campaign=kas%C4%B1m+2026"
    )
    assert links.target_url("https://shop.example/", None) == "https://shop.example/"


def test_an_address_hash_is_stable_per_salt_and_hides_the_address() -> None:
    a = links.address_hash("203.0.113.7", b"salt-one")
    assert a == links.address_hash("203.0.113.7", b"salt-one")
    assert a != links.address_hash("203.0.113.7", b"salt-two") and "203" not in a


@pytest.mark.parametrize(
    ("template", "link", "columns", "refused"),
    [
        ("Selam {ad} {link}", True, ["telefon", "ad"], None),
        ("Selam {ad} {link}", False, ["telefon", "ad"], "link_url"),  # {link} needs a page to lead to
        ("Selam {ad}", True, ["telefon", "ad"], "template"),  # a link_url nobody would see
        ("Selam {ad} {link}", True, ["telefon", "ad", "Link"], "template"),  # which one would it mean?
    ],
)
def test_link_and_link_url_go_together(
    template: str, link: bool, columns: list[str], refused: str | None
) -> None:
    spec = CampaignSpec(template=template, link=link)
    if refused is None:
        bound = spec.bound_template(columns)
        assert bound is not None and bound.fields == ("ad", "link")
        return
    with pytest.raises(TemplateError) as err:
        spec.bound_template(columns)
    assert err.value.field == refused


def test_a_text_column_job_cannot_have_a_link() -> None:
    with pytest.raises(TemplateError):
        CampaignSpec(text_column="mesaj", link=True).bound_template(["telefon", "mesaj"])
