"""parse_sip_host: the original's vectors, RFC 3261 header forms, garbage, and totality."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sayna_sip.router.sipuri import parse_sip_host

ORIGINAL_VECTORS = [
    ("sip:user@example.com", "example.com"),
    ('"User" <sip:user@example.com>', "example.com"),
    ("sip:user@example.com;user=phone", "example.com"),
    ("sip-1.example.com:5060", "sip-1.example.com"),
    ("example.com", "example.com"),
    ("192.168.1.100:5060", "192.168.1.100"),
    ("SIP-Server.EXAMPLE.COM:5060", "sip-server.example.com"),
    ("", None),
    ("not-a-domain", None),
    ("sip:nodomain", None),
    ("user@example.com", None),
]

RFC3261_FORMS = [
    ("Bob <sip:bob@biloxi.com>;tag=a6c85cf", "biloxi.com"),
    ('"Bob" <sips:bob@biloxi.example.com:5061;transport=tls>', "biloxi.example.com"),
    ("SIP:alice@Atlanta.COM", "atlanta.com"),
    ("<sip:+15551234567@sip.carrier.net;user=phone>", "sip.carrier.net"),
    ("sip:user@[2001:db8::10]:5060", "2001:db8::10"),
    ("sip:user@example.com:5060", "example.com"),  # the original kept the port here
    ("sip:example.com", "example.com"),  # no user part
    ("sips:example.com:5061", "example.com"),
    ("sip:user:secret@example.com", "example.com"),  # password in userinfo
    ("sip:+1555;phone-context=x@carrier.example.com", "carrier.example.com"),  # ';' in user
    ("sip:bob@biloxi.com?subject=project", "biloxi.com"),  # URI headers
    ('"Bob \\"the\\" <Builder>" <sip:bob@biloxi.com>', "biloxi.com"),  # escaped quotes
    ("  <SIPS:Bob@Example.COM.>  ", "example.com"),  # blanks, case, trailing root dot
    ("sip:user@10.0.0.5", "10.0.0.5"),
    ("10.0.0.5", "10.0.0.5"),  # an X-To-IP value
    ("2001:DB8::10", "2001:db8::10"),  # bare IPv6 (X-To-IP)
    ("[2001:db8::10]:5060", "2001:db8::10"),
    ("sip:alice@localhost:5060", "localhost"),  # the spec's "Local testing" hook host
    ("<sip:+15551234567@LocalHost>", "localhost"),
]

# To/From values of RFC 4475's valid torture messages (section 3.1.1), with the issue's
# case: LWS around `;` and `=` after a URI without angle brackets (SEMI, EQUAL).
RFC4475_VALID = [
    ("sip:alice@pbx.example.com ; tag = 1", "pbx.example.com"),
    ("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n", "chair-dnrc.example.com"),
    ("sip:vivekg@chair-dnrc.example.com\r\n ;   tag    = 1918181833n", "chair-dnrc.example.com"),
    ('"J Rosenberg \\""       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8', "example.com"),
    ("sip:%75se%72@example.com", "example.com"),  # esc01
    ("<sip:I%20have%20spaces@example.net>;tag=938", "example.net"),  # esc01 From
    ("sip:null-%00-null@example.com;tag=839923423", "example.com"),  # escnull
    ('"%Z%45" <sip:resource@example.com>', "example.com"),  # esc02
    ("caller<sip:caller@example.com>;tag=323", "example.com"),  # lwsdisp
    (
        '"I have a user name of extremeextremeextreme proportion"'
        "<sip:user@example.com:6000;unknownparam1=verylonngtextvaluehere;unknownparam2=x>"
        ";tag=12982982",
        "example.com",
    ),  # longreq
    ("sip:j.user@example.com", "example.com"),  # intmeth
    ("<sip:user@example.com>;tag=bhuerfc", "example.com"),  # unreason
    ("sip:user@example.com:5060 ;tag=x", "example.com"),  # a port, then LWS
]

NO_HOST = [
    "tel:+15551234567",
    "tel:+1-555-123-4567;phone-context=example.com",
    "<tel:5551234>",
    "mailto:bob@example.com",
    "http://example.com/",
    "sip:",
    "sip:user@",
    "sip:localhost",  # a lone single label, like sip:nodomain
    "localhost:5060",
    "sip:user@[2001:db8::10",  # unclosed bracket
    "sip:user@[not-ipv6]:5060",
    "sip:user@example.com:99999",  # port out of range
    "sip:user@example.com:abc",
    "example.com:0",
    "Bob <sip:bob@biloxi.com",  # unclosed <
    '"Bob" sip:bob@biloxi.com',  # quoted name without <uri>
    '"unterminated <sip:bob@biloxi.com>',
    "sip:user@exa mple.com",
    "sip:user@exa mple.com ;tag=1",  # LWS is allowed around ';', not inside the host
    "sip:user@-bad-.example.com",
    "sip:user@999.1.1.1",  # not an IPv4 address, not a name
    "sip:user@sip.例え.jp",  # IDNs arrive punycoded from LiveKit, never raw
    "sip:user@2001:db8::10",  # unbracketed IPv6 inside a URI is ambiguous
    "<>",
    "garbage",
    "@@@",
    ";;;",
    "   ",
]


_NAME_253 = ".".join(["a" * 63] * 3 + ["b" * 61])  # RFC 1035's longest name: 253 chars

# Limits from the RFCs: ports 1-65535 (RFC 3261 port = 1*DIGIT, 0 is no port), names
# of at most 253 characters (RFC 1035), a user part needs at least one character.
BOUNDS = [
    ("example.com:1", "example.com"),
    ("example.com:65535", "example.com"),
    ("example.com:65536", None),
    ("sip:user@example.com:1", "example.com"),
    ("sip:user@[2001:db8::10]:5", "2001:db8::10"),
    ("sip:user@[2001:db8::10]:99999", None),  # out of range inside brackets too
    ("sip:user@[2001:db8::10]:abc", None),
    ("sip:user@[2001:db8::10]x", None),
    (f"sip:user@{_NAME_253}", _NAME_253),
    (f"sip:user@{_NAME_253}.", _NAME_253),  # the root dot does not count
    (f"sip:user@{_NAME_253}b", None),  # 254 characters
    (f"{_NAME_253}b", None),
    ("sip:@localhost", None),  # an empty user part is no user part: a lone label
    ("::1", "::1"),  # a bare IPv6 X-To-IP value with only two colons
    ('"" <sip:bob@biloxi.com>', "biloxi.com"),  # empty display name
    ('"Bob <" <sip:bob@biloxi.com>', "biloxi.com"),  # '<' inside the display name
    ("sip:alice@PBX.EXAMPLE.MX ; tag = 1", "pbx.example.mx"),  # only LWS is trimmed
]


@pytest.mark.parametrize(("value", "host"), BOUNDS)
def test_rfc_limits_and_edges(value: str, host: str | None) -> None:
    assert parse_sip_host(value) == host


@pytest.mark.parametrize(("value", "host"), ORIGINAL_VECTORS)
def test_original_vectors(value: str, host: str | None) -> None:
    assert parse_sip_host(value) == host


@pytest.mark.parametrize(("value", "host"), RFC3261_FORMS)
def test_rfc3261_header_forms(value: str, host: str) -> None:
    assert parse_sip_host(value) == host


@pytest.mark.parametrize(("value", "host"), RFC4475_VALID)
def test_rfc4475_valid_torture_values(value: str, host: str) -> None:
    assert parse_sip_host(value) == host


@pytest.mark.parametrize("value", NO_HOST)
def test_no_host(value: str) -> None:
    assert parse_sip_host(value) is None


@given(st.text())
def test_never_raises_on_any_text(value: str) -> None:
    host = parse_sip_host(value)
    assert host is None or (host == host.lower() and host.strip() == host and host)


_PIECES = ["sip:", "SIPS:", "tel:", "<", ">", '"', "\\", "@", ":", ";", "?", "[", "]", "."]
_PIECES += ["-", "user", "example", "com", "5060", "::", "2001:db8::1", "1.2.3.4", " ", "="]
_sip_ish = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)


@given(_sip_ish)
def test_never_raises_on_sip_like_text(value: str) -> None:
    parse_sip_host(value)
