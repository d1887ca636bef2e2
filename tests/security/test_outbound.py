"""SSRF: outbound URLs reach public addresses only, checked on save and again at send time."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rapport.security import outbound
from rapport.security.outbound import OutboundRefused, check_url, safe_post

PUBLIC_IP = "93.184.216.34"


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[str]]]:
    """A fake resolver: no network in tests, and full control over the answers."""
    answers: dict[str, list[str]] = {"hooks.example.com": [PUBLIC_IP]}

    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("Name or service not known")
        return answers[host]

    monkeypatch.setattr(outbound, "resolve_host", resolve)
    outbound.set_allowed_networks([])
    yield answers
    outbound.set_allowed_networks([])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "is loopback"),
        ("http://localhost/", "local name"),
        ("http://10.1.2.3/", "is private"),
        ("http://172.16.0.1/", "is private"),
        ("http://192.168.1.1/", "is private"),
        ("http://169.254.169.254/latest/meta-data/", "is link-local"),
        ("http://100.64.0.1/", "not globally routable"),  # CGNAT
        ("http://224.0.0.1/", "is multicast"),
        ("http://240.0.0.1/", "is reserved"),
        ("http://0.0.0.0/", "is unspecified"),
        ("http://[::1]/", "is loopback"),
        ("http://[fd00::1]/", "is private"),  # IPv6 unique-local
        ("http://[fe80::1]/", "is link-local"),
        ("http://[::ffff:127.0.0.1]/", "embeds 127.0.0.1"),  # IPv4-mapped
        ("http://[::ffff:7f00:1]/", "embeds 127.0.0.1"),
        ("http://[2002:7f00:1::]/", "embeds 127.0.0.1"),  # 6to4
        ("http://[64:ff9b::a00:1]/", "embeds 10.0.0.1"),  # NAT64
        ("http://2130706433/", "alternative notation"),  # decimal
        ("http://0177.0.0.1/", "alternative notation"),  # octal
        ("http://0x7f.1/", "alternative notation"),  # hex
        ("http://127.1/", "alternative notation"),  # short form
        ("http://0x7f000001/", "alternative notation"),
        ("http://999.1.1.1/", "not a valid one"),
        ("ftp://hooks.example.com/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://hooks.example.com/", "only http and https"),
        ("http://user:pw@hooks.example.com/", "user information"),
        ("http://hooks.example.com@127.0.0.1/", "user information"),
        ("http://hooks.example.com\\@127.0.0.1/", "backslashes"),
        ("http://hooks.example.com /", "whitespace"),
        ("http://unknown.example.net/", "does not resolve"),
        ("http://metadata.internal/", "local name"),
        ("https:///nohost", "has no host"),
    ],
)
def test_forbidden_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        check_url(url)
    assert reason in refused.value.detail
    assert refused.value.status == 422
    assert refused.value.errors and refused.value.errors[0]["field"] == "url"


def test_names_resolving_to_any_forbidden_address_are_refused(dns: dict[str, list[str]]) -> None:
    dns["evil.example.com"] = [PUBLIC_IP, "10.0.0.5"]
    with pytest.raises(OutboundRefused, match=r"resolves to 10\.0\.0\.5, which is private"):
        check_url("https://evil.example.com/hook")
    dns["rebind.example.com"] = ["::ffff:169.254.169.254"]
    with pytest.raises(OutboundRefused, match=r"embeds 169\.254\.169\.254"):
        check_url("https://rebind.example.com/hook")


def test_public_urls_pass() -> None:
    check_url("https://hooks.example.com/rapport?x=1")
    check_url(f"http://{PUBLIC_IP}:8080/hook")
    check_url("https://[2606:4700::1111]/hook")


def test_allow_list_admits_an_internal_receiver(dns: dict[str, list[str]]) -> None:
    dns["receiver.corp.example"] = ["10.20.30.40"]
    with pytest.raises(OutboundRefused):
        check_url("https://receiver.corp.example/hook")
    outbound.set_allowed_networks(["10.20.30.0/24"])
    check_url("https://receiver.corp.example/hook")
    with pytest.raises(OutboundRefused):
        check_url("http://10.20.31.1/")


def test_send_connects_to_the_vetted_address_with_the_original_host() -> None:
    seen: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    r = safe_post(
        "https://hooks.example.com/in?src=rapport",
        b'{"a":1}',
        {"Content-Type": "application/json", "Host": "attacker.example"},
        transport=httpx.MockTransport(receiver),
    )
    assert r.status_code == 204
    (req,) = seen
    assert str(req.url) == f"https://{PUBLIC_IP}/in?src=rapport"
    assert req.headers["host"] == "hooks.example.com"
    assert req.extensions["sni_hostname"] == "hooks.example.com"
    assert req.content == b'{"a":1}'


def test_dns_rebinding_between_check_and_send_is_refused(dns: dict[str, list[str]]) -> None:
    check_url("https://hooks.example.com/in")  # fine when saved
    dns["hooks.example.com"] = ["127.0.0.1"]  # the attacker's DNS now answers loopback
    calls: list[httpx.Request] = []
    with pytest.raises(OutboundRefused, match=r"resolves to 127\.0\.0\.1"):
        safe_post(
            "https://hooks.example.com/in",
            b"{}",
            {},
            transport=httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(200)),
        )
    assert calls == []


def test_redirects_are_not_followed() -> None:
    calls: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    r = safe_post("https://hooks.example.com/in", b"{}", {}, transport=httpx.MockTransport(receiver))
    assert r.status_code == 302
    assert calls == [f"https://{PUBLIC_IP}/in"]


def test_non_default_port_is_kept_in_host_header() -> None:
    seen: list[httpx.Request] = []
    safe_post(
        "http://hooks.example.com:8080/in",
        b"{}",
        {},
        transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200)),
    )
    assert str(seen[0].url) == f"http://{PUBLIC_IP}:8080/in"
    assert seen[0].headers["host"] == "hooks.example.com:8080"
    assert "sni_hostname" not in seen[0].extensions
