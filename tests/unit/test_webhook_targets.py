"""Webhook calls go only to public addresses unless the config allows others (SSRF)."""

from __future__ import annotations

import pytest

from cluster.webhooks import WebhookRefused, checked_address


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
        "http://224.0.0.1/hook",
        "https://2130706433/hook",  # 127.0.0.1 as one number
        "http://0x7f000001/hook",
    ],
)
def test_loopback_private_link_local_and_metadata_targets_are_refused(url: str) -> None:
    with pytest.raises(WebhookRefused, match=r"allow_private_targets|does not resolve"):
        checked_address(url, allow_private=False)


def test_the_config_may_allow_them_and_the_checked_address_is_what_is_called() -> None:
    assert checked_address("http://127.0.0.1:9/hook", allow_private=True) == "127.0.0.1"
    assert checked_address("http://[::1]:9/hook", allow_private=True) == "::1"


def test_a_public_address_passes() -> None:
    assert checked_address("https://93.184.216.34/hook", allow_private=False) == "93.184.216.34"


def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(WebhookRefused, match="does not resolve"):
        checked_address("http://no-such-host.invalid/hook", allow_private=False)
