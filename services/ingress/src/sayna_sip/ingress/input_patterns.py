"""The API's input rules as JSON Schema patterns, for its OpenAPI document.

Each is the regex form of a check the code makes (`hosts`, `validate`, `durations`,
`deliveries`), written so that every value it matches passes that check: a client that
validates requests against the schema never sends one the API refuses. Where the code
takes a little more (surrounding whitespace, any Unicode digit, other time spellings,
numeric URL hosts outside the blocked networks), the schema leaves it out. ECMA-262
syntax only (no inline flags): a JSON Schema pattern is an ECMA regex.
tests/ingress/test_schema_rules.py holds each pattern to its check.
"""

from __future__ import annotations


def ci(word: str) -> str:
    """`word` in any case, without the inline flag ECMA-262 lacks."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else _esc(c) for c in word)


def _esc(c: str) -> str:
    return "\\" + c if c in ".-*+?()[]{}|^$\\/" else c


def _whole(*alternatives: str) -> str:
    return "^(?:" + "|".join(alternatives) + ")$"


# A hook host (hosts.normalize_host): a DNS name of letter, digit and hyphen labels, a
# `*.` wildcard over two labels or more, or an IPv6 literal (brackets allowed); IPv4
# dotted quads are names of digit labels here.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_H16 = "[0-9A-Fa-f]{1,4}"
_V6 = "|".join(
    [
        rf"(?:{_H16}:){{7}}{_H16}",
        rf"(?:{_H16}:){{1,7}}:",
        *(rf"(?:{_H16}:){{{n}}}(?::{_H16}){{1,{7 - n}}}" for n in range(1, 7)),
        rf":(?::{_H16}){{1,7}}",
        "::",
    ]
)
_HOST = rf"\*\.{_LABEL}(?:\.{_LABEL})+\.?|{_LABEL}(?:\.{_LABEL})*\.?|(?:{_V6})|\[(?:{_V6})\]"
HOST = _whole(_HOST)
HOST_MAX = 253  # so that the name (its `*.` and final dot aside) is at most 253
HOST_OR_BLANK = _whole("", _HOST)  # a filter: blank is absent

# A duration back (durations.parse_duration): a number and an optional unit; bounded so
# that it stays a finite number of seconds.
_DURATION = r"[0-9]{1,12}(?:\.[0-9]{1,9})?(?:[Mm][Ss]|[SsMmHhDd])?"
# An RFC 3339 time (what datetime.fromisoformat reads, with its zone): real dates only
# (no 29 February, as the pattern cannot tell leap years).
_YEAR = "(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_DATE = (
    "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
    "|(?:0[13578]|1[02])-31)"
)
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
_ZONE = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_STAMP = f"{_YEAR}-{_DATE}[Tt]{_TIME}{_ZONE}"
WHEN = _whole(_DURATION, _STAMP)  # deliveries.parse_when
WHEN_OR_BLANK = _whole("", _DURATION, _STAMP)  # a filter: blank is absent
TTL = _whole(  # access_tokens.parse_ttl: 1m to 30d
    "(?:[6-9][0-9]|[1-9][0-9]{2,5}|1[0-9]{6}|2[0-4][0-9]{5}|25[0-8][0-9]{4}|2591[0-9]{3})[Ss]?",
    "(?:[1-9][0-9]{0,3}|[1-3][0-9]{4}|4[0-2][0-9]{3}|43[01][0-9]{2}|43200)[Mm]",
    "(?:[1-9][0-9]?|[1-6][0-9]{2}|7[01][0-9]|720)[Hh]",
    "(?:[1-9]|[12][0-9]|30)[Dd]",
)
CURSOR_OR_BLANK = _whole("", "0*[1-9][0-9]*")  # deliveries.parse_cursor: 1 or more
CURSOR_MAX = 19
OUTCOME = _whole("_*[A-Za-z][A-Za-z_]*")  # a record outcome's name, ASCII

# A signing secret (validate.secret, one only): `whsec_` and the base64 of a 24-64 byte
# key, or 16-256 characters without spaces (ASCII here: the limit is in bytes).
_B64 = "[A-Za-z0-9+/]"
_WHSEC = (
    f"whsec_(?:(?:{_B64}{{4}}){{8,20}}(?:{_B64}{{2}}==|{_B64}{{3}}=)?"
    f"|(?:{_B64}{{4}}){{21}}(?:{_B64}{{2}}==)?)"
)
_PLAIN = "(?!whsec_)[!-~]{16,256}"
SECRET = _whole(_WHSEC, _PLAIN)  # a rotation's
SECRET_OR_BLANK = _whole(r"\s*", _WHSEC, _PLAIN)  # a hook's or endpoint's: blank is none

# A hook URL (validate.hook_url): https, a host name of up to 4 labels whose last is not a number
# (a numeric host may be a blocked address: see SIP_HOOK_ALLOW_NETWORKS), an optional
# port of 1-65535, then any visible ASCII.
_URL_LABEL = "[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,60}[A-Za-z0-9_])?"  # 62 at most: 4 fit in 253
_URL_LAST = "[A-Za-z_](?:[A-Za-z0-9_-]{0,60}[A-Za-z0-9_])?"
_PORT = "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
URL = _whole(
    f"{ci('https')}://(?:{_URL_LABEL}\\.){{0,3}}{_URL_LAST}\\.?(?::{_PORT})?(?:[/?#][!-~]*)?"
)

# A custom header (validate.headers): an RFC 9110 token name but none the forwarder
# sets or that frames the request; a value without CR, LF or NUL.
_REFUSED = ("host", "transfer-encoding", "connection", "traceparent", "tracestate")
_REFUSED_PREFIXES = ("content-", "webhook-", "sayna-", "x-sayna-")
HEADER_NAME = (
    "^(?!(?:" + "|".join(ci(n) for n in _REFUSED) + ")$)"
    "(?!" + "|".join(ci(p) for p in _REFUSED_PREFIXES) + ")"
    "[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
)
HEADER_VALUE = "^[^\\r\\n\\x00]*$"

ENDPOINT_ID = "^(?!default$)[a-z0-9-]{1,32}$"  # validate.endpoint_id; `default` is the hook's
