"""Surviving mutants judged equivalent: no behaviour a user, an operator or another
process can observe tells them from the original, so no honest test can kill them.

Each entry is (original line, mutated line, why), blanks trimmed, as `mutmut show`
prints them; `mutation/run.py` counts a survivor whose change is listed here as
equivalent instead of as a gap, and leaves it out of the score's denominator. Add an
entry only with its reason; a real gap gets a test instead.
"""

from __future__ import annotations

_ANNOTATION = "annotation only: `from __future__ import annotations` never evaluates it"
_FROZEN = "`frozen` only forbids assignment; no code assigns to or hashes these values"
_UNSENT_KIND = (
    "the value of a kind that sends nothing is never shown: only sent attempts are counted"
    " under `outcome`, and records and dead letters carry the DeadReason instead"
)


def _kind(member: str, value: str, comment: str = "") -> list[tuple[str, str, str]]:
    tail = f"  # {comment}" if comment else ""
    return [
        (f'{member} = "{value}"{tail}', f'{member} = "XX{value}XX"{tail}', _UNSENT_KIND),
        (f'{member} = "{value}"{tail}', f"{member} = None{tail}", _UNSENT_KIND),
    ]


EQUIVALENT: dict[str, list[tuple[str, str, str]]] = {
    "netpolicy": [
        (
            "IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address",
            "IPAddress = None",
            "a type alias used in annotations only",
        ),
        (
            "IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network",
            "IPNetwork = None",
            "a type alias used in annotations only",
        ),
        (
            "if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d",
            "if int(ip) >> 32 == 0 and int(ip) >= 1:  # deprecated IPv4-compatible ::a.b.c.d",
            "::1 read as IPv4-compatible 0.0.0.1 is refused (0.0.0.0/8) as ::1 itself is",
        ),
        (
            'elif len(label) > 1 and label.startswith("0"):',
            'elif len(label) >= 1 and label.startswith("0"):',
            'the one label "0" is 0 in octal as in decimal',
        ),
    ],
    "policy": [
        *_kind("BLOCKED", "blocked", "target address refused by the SSRF policy; nothing was sent"),
        *_kind("REMOVED", "removed", "the hook no longer exists"),
        *_kind("INVALID_URL", "invalid_url", "the hook URL cannot be requested; nothing was sent"),
        *_kind("DISABLED", "disabled", "the hook is disabled; nothing was sent"),
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        ("status: int | None = None", "status: int & None = None", _ANNOTATION),
        (
            "retry_after: float | None = None  # seconds, from the response",
            "retry_after: float & None = None  # seconds, from the response",
            _ANNOTATION,
        ),
        (
            "Decision = Ack | Retry | Dead",
            "Decision = None",
            "a type alias used in annotations only",
        ),
    ],
    "hosts": [
        (
            '_TOKEN_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")',
            '_TOKEN_SAFE = frozenset("XXabcdefghijklmnopqrstuvwxyz0123456789-XX")',
            "tokens are made of the lowercased host: an uppercase 'X' never reaches the set",
        ),
    ],
    "safenet": [
        (
            "AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]",
            "AddrInfo = None",
            "a type alias used in annotations only",
        ),
        (
            "self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET",
            "self, host: str, port: int = 1, family: socket.AddressFamily = socket.AF_INET",
            "AbstractResolver's signature; aiohttp always passes the port",
        ),
    ],
    "sipuri": [
        (
            "return rest[start + 1 : end].strip() if end > start else None",
            "return rest[start + 1 : end].strip() if end >= start else None",
            "`end` is where '>' is found after the '<' at `start`: never equal to `start`",
        ),
        (
            'hostport = re.split(r"[;?]", hostpart, maxsplit=1)[0]',
            'hostport = re.split(r"[;?]", hostpart, maxsplit=2)[0]',
            "only the first piece is kept: the split count after it changes nothing",
        ),
        (
            'if "@" in uri:',
            'if "XX@XX" in uri:',
            "without the early return a scheme-less `user@host` still fails the host check"
            " ('@' is no label character, nor in an address); only a bare IPv6 address with"
            " an '@' in its scope id gets through, and that matches no hook either",
        ),
    ],
}
