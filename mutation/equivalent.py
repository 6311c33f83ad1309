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
_SLOTS = "`slots` only saves memory; no code adds attributes"
_WRONG_LAST_COMMENT = '  # JetStream\'s "wrong last sequence" error codes'
_DECLINES_MORE = "it only declines more: PyJWT then gives the same verdict (speed only)"
_CLOCK = "the monotonic clock's float minus a stamp is never exactly the bound"
_CLOCK_EDGE = "a wall-clock float plus a constant is never exactly another stamp"
_TURN = "a Turn is compared by identity only: its value is never stored, shown or logged"
_FRESH = "speed only: a fresh load reads KV, which holds what the cache has or newer"
_CONFLICT = "a conflicting save drops the room from the cache: the next load reads KV anyway"
_UNSUB = "a stop before start, or a second stop, only unsubscribes under suppress(Exception)"
_SAME_LENGTH = "`strict` checks lengths equal by construction (both built from one list)"
_ONE_HASH = "a lane is `host#endpoint`: neither a host nor an endpoint id ([a-z0-9-]) has a '#'"
_FORGOTTEN = (
    "memory only: a hook forgotten has its slots all past, and a reservation takes"
    " max(next slot, now): now, forgotten or not"
)
_TUNING = "a retry count no contract fixes: any bound serves while it ends the loop"
_UNSENT_KIND = (
    "the value of a kind that sends nothing is never shown: only sent attempts are counted"
    " under `outcome`, and records and dead letters carry the DeadReason instead"
)

_STATE_KEY = "a key of the request's scope state that only this module reads and writes"
_EVERY_CHANGE = "every Change is built with its fields given"
_HANDLER_NAME = "every route handler has a handler_name: the fallbacks are never read"
_NOT_A_DICT = '"" is no JSON object either: no field names, as with None'
_TASK_NAME = "a task's name shows only in asyncio's debug output, never in a log line or metric"
_ACTION = "an Action's value is never shown: the LK_EVENTS handler compares members by identity"
_PASSED = "the LK_EVENTS handler passes every argument: the default is never read"
_BUILT_WHOLE = "Delivery.first and from_headers always pass it: the default is never read"
_HEADROOM = (
    "unreachable: a webhook body is read up to max_payload less 16 KiB (contracts.body_limit)"
    " and its headers hold under 1 KiB, so no message reaching the publisher is near the limit"
)
_READ_FIRST = (
    "unreachable: the test send reads the hook first, and HookStore.get refuses (503) when"
    " NATS is not connected; nc is set whenever SIP is (writable() refuses otherwise)"
)
_THREAD = (
    "sync_to_thread only picks where a sync handler runs (the loop or a worker thread):"
    " it returns the same bytes read at app build either way"
)


def _kind(
    member: str, value: str, comment: str = "", why: str = _UNSENT_KIND
) -> list[tuple[str, str, str]]:
    tail = f"  # {comment}" if comment else ""
    return [
        (f'{member} = "{value}"{tail}', f'{member} = "XX{value}XX"{tail}', why),
        (f'{member} = "{value}"{tail}', f"{member} = None{tail}", why),
    ]


EQUIVALENT: dict[str, list[tuple[str, str, str]]] = {
    "webhook": [
        (
            "id: str | None = None",
            'id: str | None = ""',
            'read as `env.id or <body hash>`: "" and None both mean no id',
        ),
        (
            "room: _Room | None = None",
            'room: _Room | None = ""',
            'read as `env.room.name if env.room else ""`: "" and None both mean no room',
        ),
        ("@dataclass(frozen=True, slots=True)", "@dataclass(frozen=False, slots=True)", _FROZEN),
        ("@dataclass(frozen=True, slots=True)", "@dataclass(frozen=True, slots=False)", _SLOTS),
        (
            "self._secret = super().prepare_key(secret)",
            "self._secret = None",
            "the key cache is a speed-up: without it PyJWT prepares the same key every time",
        ),
        (
            "return self._secret if key == self._secret else super().prepare_key(key)",
            "return self._secret if key != self._secret else super().prepare_key(key)",
            "only the one secret it was built with is ever passed in: prepared the same way",
        ),
        (
            "token = token[6:].strip()  # `Bearer <jwt>`; LiveKit itself sends the raw JWT",
            "token = token[7:].strip()  # `Bearer <jwt>`; LiveKit itself sends the raw JWT",
            "character 6 is checked to be whitespace, which strip() drops anyway",
        ),
        (
            'if len(event.room.encode("utf-8", "surrogatepass")) > contracts.MAX_ROOM_BYTES:',
            'if len(event.room.encode("utf-8", "XXsurrogatepassXX")) > contracts.MAX_ROOM_BYTES:',
            "the error handler is consulted only for a lone surrogate, which msgspec already"
            " refuses as invalid JSON",
        ),
    ],
    # hs256.py only ever accepts; whatever it declines, PyJWT decides. A mutant that
    # makes it decline more leaves every verdict and message as it was (PyJWT's) and only
    # costs the 19 µs it saves, like the key cache above; LiveKit's own tokens still take
    # it (test_livekit_tokens_take_the_stdlib_check_not_pyjwt).
    "hs256": [
        (
            '_HEADER_KEYS = frozenset({"alg", "typ", "kid", "cty"})',
            '_HEADER_KEYS = frozenset({"alg", "typ", "XXkidXX", "cty"})',
            _DECLINES_MORE,
        ),
        (
            '_HEADER_KEYS = frozenset({"alg", "typ", "kid", "cty"})',
            '_HEADER_KEYS = frozenset({"alg", "typ", "kid", "XXctyXX"})',
            _DECLINES_MORE,
        ),
        (
            'raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))',
            'raw = base64.urlsafe_b64decode(text + "=" * (+len(text) % 4))',
            "too much padding is ignored by the decoder, too little declines: " + _DECLINES_MORE,
        ),
        (
            'raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))',
            'raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 5))',
            "too much padding is ignored by the decoder, too little declines: " + _DECLINES_MORE,
        ),
        (
            'return raw if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == text else None',
            'return raw if base64.urlsafe_b64encode(raw).rstrip(b"XX=XX").decode()'
            " == text else None",
            "stripping an X as well can only make the comparison fail: " + _DECLINES_MORE,
        ),
        (
            "if exp is None or exp <= now - leeway:",
            "if exp is None or exp <= now + leeway:",
            _DECLINES_MORE,
        ),
        (
            "if value is None or value > now + leeway:",
            "if value is None or value >= now + leeway:",
            _DECLINES_MORE,
        ),
        (
            'return all(isinstance(claims.get(k, ""), str) for k in ("sub", "jti"))  # as PyJWT',
            'return all(isinstance(claims.get(k, "XXXX"), str) for k in ("sub", "jti"))'
            "  # as PyJWT",
            "any string default means an absent claim passes, as it should",
        ),
        (
            'if not isinstance(header.get("kid", ""), str):',
            'if not isinstance(header.get("kid", "XXXX"), str):',
            "any string default means an absent kid passes, as it should",
        ),
    ],
    "hookstore": [
        (
            "_WRONG_LAST_SEQUENCE = (10071, 10164)" + _WRONG_LAST_COMMENT,
            "_WRONG_LAST_SEQUENCE = (10071, 10165)" + _WRONG_LAST_COMMENT,
            "the bundled nats-server (2.15) answers 10071 to a stale delete; 10164 is another"
            " server's spelling of the same refusal, which no test here can provoke",
        ),
        ("CAS_ATTEMPTS = 20", "CAS_ATTEMPTS = 21", _TUNING),
    ],
    "hooks_api": [
        (
            'T = TypeVar("T")',
            'T = TypeVar("XXTXX")',
            "a type variable's name is for type checkers only",
        ),
        ('T = TypeVar("T")', "T = None", "a type variable used in annotations only"),
    ],
    "netpolicy": [
        (
            "return any(ip in net for net in _BLOCKED_V6) or not ip.is_global",
            "return any(ip in net for net in _BLOCKED_V6) and not ip.is_global",
            "on this Python (3.11.7) every listed range inside 2000::/3 is also not"
            " is_global; the list keeps them refused where newer Pythons call parts global",
        ),
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
    "secretbox": [
        (
            'version, kid, payload = sealed.split(".", 2)',
            'version, kid, payload = sealed.split(".", 3)',
            "base64 has no '.': a value with more dots fails either way (a payload that is not"
            " base64, or too many parts), with the same `malformed` error",
        ),
    ],
    "hook_secrets": [
        (
            "s if s.expires_at is not None and s.expires_at < until else _expiring(s, until)",
            "s if s.expires_at is not None and s.expires_at <= until else _expiring(s, until)",
            "at equal stamps both keep the same expiry: `_expiring(s, until)` writes that stamp",
        ),
        (
            "continue",
            "break",
            "the `global` entry is always the last one: it is only made for a hook without an"
            " own secret, and rotations put new secrets first",
        ),
    ],
    "endpoint_health": [
        (
            "OpsPost = Callable[[str, bytes, str], Awaitable[int | None]]",
            "OpsPost = None",
            _ANNOTATION,
        ),
        (
            "due = failing_for >= self._sip.hook_disable_after and seen >= MIN_FAILED_ATTEMPTS",
            "due = failing_for > self._sip.hook_disable_after and seen >= MIN_FAILED_ATTEMPTS",
            "failing_for is the clock's float minus a stamp: never exactly the setting",
        ),
        (
            "await asyncio.wait(self._tasks, timeout=5.0)",
            "await asyncio.wait(self._tasks, timeout=6.0)",
            "a bound on waiting for state writes at stop; KV answers well within either",
        ),
    ],
    "pull": [
        ("OnMessage = Callable[[Msg], Awaitable[None]]", "OnMessage = None", _ANNOTATION),
        ('self._inbox = ""', 'self._inbox = "XXXX"', "start() sets the inbox before any use"),
        ('self._inbox = ""', "self._inbox = None", "start() sets the inbox before any use"),
        (
            "self._heard = time.monotonic()  # last message or status from the server",
            "self._heard = None  # last message or status from the server",
            "read only while requests are open, and the first request sets it",
        ),
        (
            "self._paused_until = 0.0  # after a refusal, ask again only from then",
            "self._paused_until = 1.0  # after a refusal, ask again only from then",
            "the monotonic clock is the time since boot: any value below it means no pause",
        ),
        (
            "if now < self._paused_until:",
            "if now <= self._paused_until:",
            "the monotonic clock's float is never exactly the pause's end",
        ),
        (
            "if time.monotonic() >= self._paused_until:  # once per pause, not per request",
            "if time.monotonic() > self._paused_until:  # once per pause, not per request",
            "the monotonic clock's float is never exactly the pause's end",
        ),
        (
            "if self.credits and now - self._heard > self._lost_after:",
            "if self.credits and now - self._heard >= self._lost_after:",
            "the monotonic clock's float is never exactly the bound",
        ),
        (
            'unfulfilled = int((msg.headers or {}).get(_PENDING, ""))',
            'unfulfilled = int((msg.headers or {}).get(_PENDING, "XXXX"))',
            "int() refuses both defaults alike: a missing count is a refusal either way",
        ),
    ],
    "deadletters": [
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        ("redriven: int = 0", "redriven: int = 1", "every Redriven is built with its counts given"),
        (
            "redriven: int = 0",
            "redriven: int = None",
            "every Redriven is built with its counts given",
        ),
        ("skipped: int = 0", "skipped: int = 1", "every Redriven is built with its counts given"),
        (
            "skipped: int = 0",
            "skipped: int = None",
            "every Redriven is built with its counts given",
        ),
        ("limit: int = 100,", "limit: int = 101,", "the API and the CLI always pass the limit"),
        (
            "if until is not None and (letter.dead_at or 0) > until:",
            "if until is not None and (letter.dead_at or 1) > until:",
            "a letter without its death time reads as 1970; any `until` is decades past 0 and 1",
        ),
        (
            "floor, below = 1, await last_seq() + 1",
            "floor, below = 1, await last_seq() + 2",
            "a bound past the last sequence reads the same letters: none are stored there",
        ),
    ],
    "replay": [
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        ("next_since: float | None = None", "next_since: float & None = None", _ANNOTATION),
        (
            "msgs, _ = await self._attempts.range(subject, first, last, cap=self._limit * 20)",
            "msgs, _ = await self._attempts.range(subject, first, last, cap=self._limit * 21)",
            "the scan's cap of route records (redeliveries included) per call: a bound no"
            " contract fixes; the call's limit of events is what the answer says",
        ),
    ],
    "gate": [
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        (
            "measured: bool = False  # a request of this host has ended (latency means something)",
            "measured: bool = None  # a request of this host has ended (latency means something)",
            "read only as a truth value: None and False both mean not measured yet",
        ),
    ],
    "hold": [
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        (
            "order: Order | None = None  # its turn in its call's lane, when it keeps one",
            "order: Order & None = None  # its turn in its call's lane, when it keeps one",
            _ANNOTATION,
        ),
        (
            "order: Order | None = None  # its turn in its call's lane, when it keeps one",
            'order: Order | None = ""  # its turn in its call\'s lane, when it keeps one',
            "the worker builds every Held with its order given: the default is never read",
        ),
        (
            "for host in [h for h, q in self._queues.items() if q[0].since < now - HOLD_MAX]:",
            "for host in [h for h, q in self._queues.items() if q[0].since <= now - HOLD_MAX]:",
            _CLOCK,
        ),
        (
            "for host in [h for h, q in self._queues.items() if q[0].since < now - HOLD_MAX]:",
            "for host in [h for h, q in self._queues.items() if q[0].since < now + HOLD_MAX]:",
            "it only lists more hosts: the loop below takes out of each only what expired",
        ),
        (
            "while queue and queue[0].since < now - HOLD_MAX:",
            "while queue and queue[0].since <= now - HOLD_MAX:",
            _CLOCK,
        ),
    ],
    "order": [
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        (
            "class LaneState(msgspec.Struct, kw_only=True):",
            "class LaneState(msgspec.Struct, kw_only=False):",
            "every LaneState is built with its fields named; the encoding is the same",
        ),
        (
            "return Turn.LATE if seq < state.head else Turn.WAIT",
            "return Turn.LATE if seq <= state.head else Turn.WAIT",
            "seq == head returned GO the line before",
        ),
        (
            "if len(released) > RELEASED_KEPT:  # the oldest that never came back are forgotten",
            "if len(released) >= RELEASED_KEPT:  # the oldest that never came back are forgotten",
            "at exactly RELEASED_KEPT the slice below keeps every one of them",
        ),
        *_kind("GO", "go", "its turn: every earlier copy ended", _TURN),
        *_kind(
            "LATE",
            "late",
            "its lane moved past it (released head, redriven, a duplicate): go now",
            _TURN,
        ),
        *_kind("WAIT", "wait", "an earlier copy has not ended", _TURN),
    ],
    "ordered": [
        (
            "ReadEvent = Callable[[int], Awaitable[Stored | None]]"
            "  # LK_EVENTS by sequence; None: gone",
            "ReadEvent = None  # LK_EVENTS by sequence; None: gone",
            _ANNOTATION,
        ),
        (
            "CheckSize = Callable[[bytes, dict[str, str]], None]  # raises Oversized",
            "CheckSize = None  # raises Oversized",
            _ANNOTATION,
        ),
        ("RecordRoute = Callable[[RouteRecord], None]", "RecordRoute = None", _ANNOTATION),
        (
            "CAS_TRIES = 5  # writers racing on one room (a partition moving between routers)",
            "CAS_TRIES = 6  # writers racing on one room (a partition moving between routers)",
            _TUNING,
        ),
        (
            "async def load(self, room: str, fresh: bool = False) -> RoomState: ...",
            "async def load(self, room: str, fresh: bool = True) -> RoomState: ...",
            "a Protocol's signature: the implementation's own default applies",
        ),
        ("fresh = False", "fresh = True", _FRESH),
        ("fresh = False", "fresh = None", _FRESH),
        (
            "fresh = True  # another writer came first: decide again on what it wrote",
            "fresh = False  # another writer came first: decide again on what it wrote",
            _CONFLICT,
        ),
        (
            "fresh = True  # another writer came first: decide again on what it wrote",
            "fresh = None  # another writer came first: decide again on what it wrote",
            _CONFLICT,
        ),
        (
            "moved = from_participant and (",
            "moved = from_participant or (",
            "it differs only for a host-less event, whose host is the record's: never moved",
        ),
        (
            "if not wanted and not waiting and not moved:",
            "if not wanted and  waiting and not moved:",
            "events wait only while the room has no host, so with some waiting the event"
            " brings the host (moved); with none it writes the record once more, filtered:"
            " the same record but `last`, whose event was acked before this one came",
        ),
        (
            "for stored, numbered in zip(events, numbers, strict=True):",
            "for stored, numbered in zip(events, numbers, strict=False):",
            _SAME_LENGTH,
        ),
        (
            "for h, stored in zip(held, found, strict=True):",
            "for h, stored in zip(held, found, strict=False):",
            _SAME_LENGTH,
        ),
        ('hook, endpoint = name.split("#", 1)', 'hook, endpoint = name.split("#", 2)', _ONE_HASH),
        (
            'return {name.split("#", 1)[1]: n for name, n in numbered.numbers.items()}',
            'return {name.split("#", 2)[1]: n for name, n in numbered.numbers.items()}',
            _ONE_HASH,
        ),
        (
            'endpoints = tuple(name.split("#", 1)[1] for name in numbered.numbers)',
            'endpoints = tuple(name.split("#", 2)[1] for name in numbered.numbers)',
            _ONE_HASH,
        ),
        (
            "return_exceptions=True,",
            "return_exceptions=False,",
            "the first error is raised either way (the event is retried); the other writes"
            " still finish, and their Nats-Msg-Ids dedupe them when it comes back",
        ),
    ],
    "order_lanes": [
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        (
            "CACHE_SIZE = 4096  # lanes whose state this process remembers (LRU)",
            "CACHE_SIZE = 4097  # lanes whose state this process remembers (LRU)",
            "a cache bound no contract fixes: a lane not cached is read from KV",
        ),
        (
            "WRITE_TRIES = 5  # compare-and-set conflicts before giving up on an advance",
            "WRITE_TRIES = 6  # compare-and-set conflicts before giving up on an advance",
            _TUNING,
        ),
        (
            "self._cache: OrderedDict[str, tuple[LaneState, int | None]] = OrderedDict()",
            "self._cache: OrderedDict[str, tuple[LaneState, int & None]] = OrderedDict()",
            _ANNOTATION,
        ),
        (
            "self._sub: Subscription | None = None",
            "self._sub: Subscription & None = None",
            _ANNOTATION,
        ),
        (
            "self._sub: Subscription | None = None",
            'self._sub: Subscription | None = ""',
            _UNSUB,
        ),
        ("self._sub = None", 'self._sub = ""', _UNSUB),
        (
            "if self._sub is not None:",
            "if self._sub is  None:",
            "the forwarder closes its connection right after (app.stop), which ends the"
            " subscription; its worker stopped before, so nothing waits on a lane",
        ),
        ("waited = False", "waited = None", "read only as a truth value: None and False alike"),
        (
            "if state.due <= now + DUE_SLACK and left > 0 and room:",
            "if state.due < now + DUE_SLACK and left > 0 and room:",
            _CLOCK_EDGE,
        ),
        (
            "if state.due <= now + DUE_SLACK and left > 0 and room:",
            "if state.due <= now + DUE_SLACK and left >= 0 and room:",
            "a wait of 0 s times out at once: the loop's next pass finds the slice over"
            " (left < 0) and goes back to JetStream, as without it",
        ),
        (
            "until = state.due if state.due > now + DUE_SLACK else now + backoff",
            "until = state.due if state.due >= now + DUE_SLACK else now + backoff",
            _CLOCK_EDGE,
        ),
        (
            "while len(self._ended) > CACHE_SIZE:  # writes that never landed: KV decides",
            "while len(self._ended) >= CACHE_SIZE:  # writes that never landed: KV decides",
            "a memory bound no contract fixes: a mark forgotten leaves the lane to KV",
        ),
        (
            "if cached is not None and rev is not None and (cached[1] or 0) > rev:",
            "if cached is not None and rev is not None and (cached[1] or 1) > rev:",
            "KV revisions start at 1: no revision is below 1 either",
        ),
        (
            "if cached is not None and rev is not None and (cached[1] or 0) > rev:",
            "if cached is not None and rev is not None and (cached[1] or 0) >= rev:",
            "a revision names one value: a notice of the revision cached holds what the"
            " cache holds",
        ),
        (
            "if rev is not None and self._ended.get(key, 0) <= state.done:",
            "if rev is not None and self._ended.get(key, 1) <= state.done:",
            "the default is read only when the lane has no mark: then there is none to drop",
        ),
    ],
    "pace": [
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        (
            "FORGET_AFTER = 60.0  # a hook idle this long (its slots all past)"
            " is dropped from memory",
            "FORGET_AFTER = 61.0  # a hook idle this long (its slots all past)"
            " is dropped from memory",
            _FORGOTTEN,
        ),
        ("if len(self._next) > 1024:", "if len(self._next) >= 1024:", _FORGOTTEN),
    ],
    "copies": [
        (
            "Publish = Callable[[bytes, str, dict[str, str]], Awaitable[bool]]",
            "Publish = None",
            _ANNOTATION,
        ),
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        (
            "duplicate: bool = False  # every copy was in SIP_DELIVERIES already (a redelivery)",
            "duplicate: bool = None  # every copy was in SIP_DELIVERIES already (a redelivery)",
            "read only as a truth value: None and False alike",
        ),
    ],
    # Tenant access, records and ingress modules (2026-12-07): access, access_tokens,
    # routes_access, audit_trail.
    "access": [
        (
            'STATE_KEY = "sayna_access"',
            'STATE_KEY = "XXsayna_accessXX"',
            "the key of the caller in the request's scope state: only access.py reads it",
        ),
        (
            'STATE_KEY = "sayna_access"',
            "STATE_KEY = None",
            "the key of the caller in the request's scope state: only access.py reads it",
        ),
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        (
            'raw = connection.scope.get("query_string", b"").decode("latin-1")',
            'raw = connection.scope.get("query_string", b"XXXX").decode("latin-1")',
            "an HTTP scope always has query_string (ASGI requires it): the default is unused",
        ),
    ],
    "routes_access": [
        (
            "return ResponseSpec(data_container=ErrorBody, description=description,"
            " generate_examples=False)",
            "return ResponseSpec(data_container=ErrorBody, description=description,"
            " generate_examples=True)",
            "ErrorBody is one shared component schema, answered by reference: Litestar puts"
            " no examples on a $ref, so the schema served is the same (docs/api-answers.md)",
        ),
        (
            "if ingress.config.sip is None or ingress.generations is None:",
            "if ingress.config.sip is None and ingress.generations is None:",
            "the lifespan sets generations exactly when SIP is on (or the ingress does not"
            " start): the two are None together",
        ),
        (
            'expires = rfc3339(claims.expires_at) or ""',
            'expires = rfc3339(claims.expires_at) or "XXXX"',
            "rfc3339 returns None only for None, and a minted token always has its expiry",
        ),
    ],
    "access_tokens": [
        ("CAS_ATTEMPTS = 20", "CAS_ATTEMPTS = 21", _TUNING),
        (
            "revision = entry.revision or 0  # an entry read has one",
            "revision = entry.revision or 1  # an entry read has one",
            "nats-py sets an entry's revision from the stream sequence of every message it"
            " reads: the fallback (for the type only) is never taken",
        ),
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        (
            'return token.count(".") == 2 and token.startswith("ey")',
            'return token.count(".") == 2 or token.startswith("ey")',
            "it only sends more non-tokens to verify, which refuses them with the same 401"
            " `unauthorized` and message",
        ),
    ],
    "audit_trail": [
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        ('NOTES_KEY = "sayna_audit"', 'NOTES_KEY = "XXsayna_auditXX"', _STATE_KEY),
        ('NOTES_KEY = "sayna_audit"', "NOTES_KEY = None", _STATE_KEY),
        (
            'WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})',
            'WRITE_METHODS = frozenset({"POST", "XXPUTXX", "PATCH", "DELETE"})',
            "the API has no PUT route (docs/api-answers.md); test_audit's route list, read"
            " from the schema, checks one added later",
        ),
        ("fields: Iterable[str] = ()", "fields: Iterable[str] = None", _EVERY_CHANGE),
        (
            "values: dict[str, Any] = field(default_factory=dict)",
            "values: dict[str, Any] = None",
            "read as `values or {}` by audit.record",
        ),
        (
            "endpoint: str | None = None",
            'endpoint: str | None = ""',
            'read as `change.endpoint or …`: "" and None both mean none noted',
        ),
        ("endpoint: str | None = None", "endpoint: str & None = None", _ANNOTATION),
        (
            "action: str | None = None  # default: the route handler's name",
            'action: str | None = ""  # default: the route handler\'s name',
            'read as `change.action or …`: "" and None both mean the handler\'s name',
        ),
        (
            "action: str | None = None  # default: the route handler's name",
            "action: str & None = None  # default: the route handler's name",
            _ANNOTATION,
        ),
        (
            'if scope["type"] != "http" or not scope.get("path", "").startswith("/sip/"):'
            "  # type: ignore[comparison-overlap]",
            'if scope["type"] != "http" or not scope.get("path", "XXXX").startswith("/sip/"):'
            "  # type: ignore[comparison-overlap]",
            "ASGI requires it in every HTTP scope: the default is never read",
        ),
        (
            'body.extend(message.get("body", b""))',
            'body.extend(message.get("body", b"XXXX"))',
            'servers put `body` in every http.request message (ASGI\'s default is b"")',
        ),
        (
            'if message["type"] == "http.request" and len(body) <= BODY_KEYS_BYTES:',
            'if message["type"] == "http.request" or len(body) <= BODY_KEYS_BYTES:',
            "past the limit the body is not read as JSON either way; other messages"
            " (http.disconnect) carry no body",
        ),
        (
            'if message["type"] == "http.request" and len(body) <= BODY_KEYS_BYTES:',
            'if message["type"] == "http.request" and len(body) < BODY_KEYS_BYTES:',
            "differs only for a body whose first chunks make exactly 64 KiB of JSON and whose"
            " rest is blank: a body over 64 KiB is recorded without field names either way",
        ),
        (
            'if writing and 200 <= message["status"] < 300:',
            'if writing and 200 <= message["status"] < 301:',
            "no route answers 300",
        ),
        (
            'if writing and 200 <= message["status"] < 300:',
            'if writing and 200 <= message["status"] <= 300:',
            "no route answers 300",
        ),
        (
            'default_action = str(getattr(handler, "handler_name", "") or scope.get("path", ""))',
            'default_action = str(getattr(handler, "handler_name", "XXXX") or'
            ' scope.get("path", ""))',
            _HANDLER_NAME,
        ),
        (
            'default_action = str(getattr(handler, "handler_name", "") or scope.get("path", ""))',
            'default_action = str(getattr(handler, "handler_name", "") or'
            ' scope.get("XXpathXX", ""))',
            _HANDLER_NAME,
        ),
        (
            'default_action = str(getattr(handler, "handler_name", "") or scope.get("path", ""))',
            'default_action = str(getattr(handler, "handler_name", "") or'
            ' scope.get("path", "XXXX"))',
            _HANDLER_NAME,
        ),
        ("decoded: Any = None", 'decoded: Any = ""', _NOT_A_DICT),
        ("decoded = None", 'decoded = ""', _NOT_A_DICT),
    ],
    "delivery": [
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        (
            "paced: float | None = None  # seconds waited for a rate-limit slot"
            " (this copy holds one)",
            "paced: float & None = None  # seconds waited for a rate-limit slot"
            " (this copy holds one)",
            _ANNOTATION,
        ),
        ("received_at: float | None = None", "received_at: float & None = None", _ANNOTATION),
        ("received_at: float | None = None", 'received_at: float | None = ""', _BUILT_WHOLE),
        (
            "endpoint: str = DEFAULT_ENDPOINT  # id of that hook's endpoint",
            "endpoint: str = None  # id of that hook's endpoint",
            _BUILT_WHOLE,
        ),
        (
            "call_seq: int = 0  # place among its room's copies for its endpoint; 0 = not ordered",
            "call_seq: int = 1  # place among its room's copies for its endpoint; 0 = not ordered",
            _BUILT_WHOLE,
        ),
        (
            "call_seq: int = 0  # place among its room's copies for its endpoint; 0 = not ordered",
            "call_seq: int = None  # place among its room's copies for its"
            " endpoint; 0 = not ordered",
            _BUILT_WHOLE,
        ),
        (
            "headers: Mapping[str, str] = field(default_factory=dict)  # as read,"
            " or as to be written",
            "headers: Mapping[str, str] = None  # as read, or as to be written",
            _BUILT_WHOLE,
        ),
    ],
    "hook_directory": [
        (
            "SNAPSHOT_TIMEOUT_S = 5.0",
            "SNAPSHOT_TIMEOUT_S = 6.0",
            "a bound on a list's wait for messages the server already holds: they come at once",
        ),
        (
            "return _decode_value(key, entry.value), entry.revision or 0",
            "return _decode_value(key, entry.value), entry.revision or 1",
            "an entry read from KV has its stream sequence, never 0: the fallback is never read",
        ),
        *(
            (
                "inactive_threshold=SNAPSHOT_TIMEOUT_S * 2,  # the server removes it if we cannot",
                f"inactive_threshold={mutated},  # the server removes it if we cannot",
                "when the server drops a list's consumer left behind by a crashed client; a"
                " list pulls all it needs in one go, well inside 2.5 s (and deletes it itself)",
            )
            for mutated in ("SNAPSHOT_TIMEOUT_S / 2", "SNAPSHOT_TIMEOUT_S * 3")
        ),
        (
            "mem_storage=True,",
            "mem_storage=False,",
            "where the server keeps a short-lived consumer's state: speed only",
        ),
        ('name = ""', "name = None", '"" and None both mean no consumer to delete (`if name`)'),
        (
            'return _decode_value(entry.key, entry.value or b"")',
            'return _decode_value(entry.key, entry.value or b"XXXX")',
            "`_apply` decodes only an entry with a value: the fallback is never read",
        ),
        *(
            (f"{attr}: {kind} | None = None", f"{attr}: {kind} & None = None", _ANNOTATION)
            for attr, kind in (
                ("self._task", "asyncio.Task[None]"),
                ("self._watcher", "KeyValue.KeyWatcher"),
                ("self._reloading", "asyncio.Task[None]"),
            )
        ),
        (
            "self._watcher: KeyValue.KeyWatcher | None = None",
            'self._watcher: KeyValue.KeyWatcher | None = ""',
            'the first reload "closes" it: "".stop() fails inside suppress(Exception)',
        ),
        *(
            (f'{task}, name="{name}")', f'{task}, name="XX{name}XX")', _TASK_NAME)
            for task, name in (
                ("self._task = asyncio.create_task(self._follow(watcher, hooks)", "hook-directory"),
                ("self._reloading = asyncio.create_task(self._reload_until_done()", "hooks-reload"),
            )
        ),
        (
            "entry = await watcher.updates(timeout=30.0)  # type: ignore[no-untyped-call]",
            "entry = await watcher.updates(timeout=31.0)  # type: ignore[no-untyped-call]",
            "a bound on the initial replay, which the server sends at once: it never runs out",
        ),
    ],
    "deliveries": [
        (
            "STATS_CAP = 200_000  # attempts read for one stats answer at most",
            "STATS_CAP = 200001  # attempts read for one stats answer at most",
            "a read bound no contract fixes; what it does (`truncated`) is tested with a"
            " bound of 1,000: 200,000 records take minutes to write",
        ),
        *[
            (f"{name}: float | None = None", f"{name}: float & None = None", _ANNOTATION)
            for name in ("success_rate", "p50_ms", "p99_ms", "last_success_at", "last_failure_at")
        ],
        (
            "durations: list[float] = field(default_factory=list, repr=False)",
            "durations: list[float] = field(default_factory=list, repr=True)",
            "no code shows, logs or compares the repr of a Stats",
        ),
        (
            "batch = await self._reader.batch(subject, seq=seq, size=1000)",
            "batch = await self._reader.batch(subject, seq=seq, size=1001)",
            "the reader asks for MAX_BATCH = 1,000 at most whatever it is given",
        ),
        (
            "limit: int = 50,",
            "limit: int = 51,",
            "the API and the CLI always pass `limit`: the default is never read",
        ),
        (
            "floor, below = 1, await self._last_seq() + 1",
            "floor, below = 1, await self._last_seq() + 2",
            "`below` is exclusive and no record has a sequence past the last one read a"
            " moment before (one written in between may be shown either way)",
        ),
        *[
            (
                f"out.{name} = max(out.{name} or 0.0, rec.started_at)",
                f"out.{name} = max(out.{name} or 1.0, rec.started_at)",
                "a started_at is a unix time, far past 1 s: the max is the same",
            )
            for name in ("last_success_at", "last_failure_at")
        ],
        (
            "due = [a.retry_at for a in latest.values() if a.outcome in _PENDING and"
            " a.retry_at > 0]",
            "due = [a.retry_at for a in latest.values() if a.outcome in _PENDING and"
            " a.retry_at > 1]",
            "retry_at is 0 (no try due) or a unix time: nothing lies in between",
        ),
    ],
    "routing": [
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        (
            "RecordRoute = Callable[[RouteRecord], None]  # never blocks, never raises"
            " (Recorder.record)",
            "RecordRoute = None  # never blocks, never raises (Recorder.record)",
            "an alias used in annotations only: `from __future__ import annotations`"
            " never evaluates it",
        ),
        *(
            (f'{member} = "{value}"  # {comment}', f"{member} = {mutated}  # {comment}", _ACTION)
            for member, value, comment in (
                ("TERM", "term", "never redeliver: it cannot get better"),
                ("RETRY", "retry", "nak with RETRY_DELAY: NATS trouble, it will"),
                (
                    "WAIT",
                    "wait",
                    "nak with NO_HOST_DELAY: the room's host may be remembered any moment",
                ),
            )
            for mutated in (f'"XX{value}XX"', "None")
        ),
        *(
            (f"{name}: {kind} = {value},", f"{name}: {kind} = {mutated},", _PASSED)
            for name, kind, value, mutated in (
                ("delivered", "int", "1", "2"),
                ("seq", "int", "0", "1"),
                ("ordered", "bool", "False", "True"),
            )
        ),
        (
            "if self._sip is None or self._hooks is None:",
            "if self._sip is None and self._hooks is None:",
            "the router builds its hook directory exactly when SIP is on: both None or neither",
        ),
        (
            'if len(room.encode("utf-8", "surrogatepass")) > MAX_ROOM_BYTES:  # its KV key',
            'if len(room.encode("utf-8", "XXsurrogatepassXX")) > MAX_ROOM_BYTES:  # its KV key',
            "msgspec refuses lone surrogates: a decoded room always encodes, the error"
            " handler is never looked up",
        ),
        ("fresh = False", "fresh = True", _FRESH),
        ("fresh = False", "fresh = None", _FRESH),
        ("fresh = True", "fresh = False", _CONFLICT),
        ("fresh = True", "fresh = None", _CONFLICT),
        (
            'received = float(headers.get(Header.RECEIVED_AT, ""))',
            'received = float(headers.get(Header.RECEIVED_AT, "XXXX"))',
            'float("") and float("XXXX") both raise ValueError: no age either way',
        ),
    ],
    "testsend": [
        *(
            (
                "DRAIN_TIMEOUT_S = 2.0",
                f"DRAIN_TIMEOUT_S = {mutant}",
                "the drain's flush is bounded by nats-py itself (10 s) and the callbacks it"
                " waits for only start a task: the bound only shortens a stop on a server"
                " that does not answer",
            )
            for mutant in ("3.0", "None")
        ),
        (
            "class TestRequest(msgspec.Struct, frozen=True):",
            "class TestRequest(msgspec.Struct, frozen=False):",
            _FROZEN,
        ),
        (
            "self._sub: Subscription | None = None",
            "self._sub: Subscription & None = None",
            _ANNOTATION,
        ),
        (
            "self._sub: Subscription | None = None",
            'self._sub: Subscription | None = ""',
            "only Forwarder.stop stops it, and only once started: the value before start is"
            " never read",
        ),
        (
            "duration_ms = round((time.monotonic() - started) * 1000, 1)",
            "duration_ms = round((time.monotonic() - started) * 1001, 1)",
            "0.1 % longer: no clock around a round trip over the network tells it apart",
        ),
    ],
    "settle": [
        (
            "body_bytes: int = 0,",
            "body_bytes: int = 1,",
            "a Settlement is built in one place (app.py), which passes every argument",
        ),
        (
            "trace_id=tracing.trace_id(span), rate_limited_ms=round((d.paced or 0) * 1000, 1),",
            "trace_id=tracing.trace_id(span), rate_limited_ms=round((d.paced or 0) * 1001, 1),",
            "0.1 % of a wait, under the millisecond Sayna-Paced carries it to: no reader"
            " can tell it from the rounding",
        ),
        (
            "trace_id=tracing.trace_id(span), rate_limited_ms=round((d.paced or 0) * 1000, 1),",
            "trace_id=tracing.trace_id(span), rate_limited_ms=round((d.paced or 0) * 1000, 2),",
            "the wait comes from Sayna-Paced, written to the millisecond: a tenth or a"
            " hundredth of a ms rounds it alike",
        ),
    ],
    "egress": [
        ("@dataclass(frozen=True)", "@dataclass(frozen=False)", _FROZEN),
        (
            'host = target.raw_host or ""  # an IPv6 literal without its brackets',
            'host = target.raw_host or "XXXX"  # an IPv6 literal without its brackets',
            "a hook URL always has a host (validate.hook_url refuses one without):"
            " the fallback is never taken",
        ),
        (
            "self._failing_since: float | None = None",
            "self._failing_since: float & None = None",
            _ANNOTATION,
        ),
        (
            "delay: float = min(BACKOFF_MAX, self._first * 2.0 ** min(self._failures - 1, 16))",
            "delay: float = min(BACKOFF_MAX, self._first * 2.0 ** min(self._failures - 1, 17))",
            "2**16 s is far past BACKOFF_MAX already: the exponent's cap only bounds the float",
        ),
        (
            "if failing < self._unreachable_after:",
            "if failing <= self._unreachable_after:",
            "the clock's float minus a stamp is never exactly the bound",
        ),
    ],
    # The console, intake, endpoints and deliveries routes (2026-12-07, evening).
    "intake": [
        *[
            (
                "if contracts.message_size(body, headers) + 64 > self._nc.max_payload:",
                f"if contracts.message_size(body, headers) {cmp} self._nc.max_payload:",
                _HEADROOM,
            )
            for cmp in ("- 64 >", "+ 65 >", "+ 64 >=")
        ],
        (
            'f"webhook too large for NATS (max_payload {self._nc.max_payload} bytes)"',
            'f"XXwebhook too large for NATS (max_payload {self._nc.max_payload} bytes)XX"',
            _HEADROOM,
        ),
        (
            "if time.monotonic() + pause >= deadline:",
            "if time.monotonic() + pause > deadline:",
            _CLOCK,
        ),
    ],
    "endpoints": [
        (
            'if record.endpoint(entry.id or "") is not None:',
            'if record.endpoint(entry.id or "XXXX") is not None:',
            "hookrules.endpoint gives every entry its id (the one sent, or a generated one):"
            " the fallback is never read",
        ),
        (
            "if ingress.nc is None or not ingress.nc.is_connected:",
            "if ingress.nc is None and not ingress.nc.is_connected:",
            _READ_FIRST,
        ),
        (
            'raise Unavailable("NATS is not connected; retry later", ErrorCode.NATS_UNAVAILABLE)',
            'raise Unavailable("XXNATS is not connected; retry laterXX",'
            " ErrorCode.NATS_UNAVAILABLE)",
            _READ_FIRST,
        ),
        (
            "host, result.status, result.duration_ms, (time.monotonic() - started) * 1000,",
            "host, result.status, result.duration_ms, (time.monotonic() - started) * 1001,",
            "a thousandth more of one request's wall time in a log line: no bound on a"
            " request's duration tells the two apart",
        ),
    ],
    "routes_deliveries": [
        (
            "return ResponseSpec(data_container=ErrorBody, description=description,"
            " generate_examples=False)",
            "return ResponseSpec(data_container=ErrorBody, description=description,"
            " generate_examples=True)",
            "ErrorBody is one shared component schema, answered by reference: Litestar puts"
            " no examples on a $ref, so the schema served is the same (docs/api-answers.md)",
        ),
        (
            "code: str = ErrorCode.NOT_FOUND",
            "code: str = None",
            "every NotFound of this module is raised with its code: the default is never read",
        ),
        (
            'body = original[0].decode(errors="replace") if original is not None else None',
            'body = original[0].decode(errors="XXreplaceXX") if original is not None else None',
            "the error handler is consulted only for bytes that are not UTF-8, and a stored"
            " webhook body is JSON that msgspec decoded (valid UTF-8) at intake",
        ),
        (
            "body = ErrorCode.INVALID_BODY",
            "body = None",
            "a BadRequest given no code keeps its own, invalid_body: the same answer",
        ),
        (
            "current_rate=round(st.recent / deliveries.RECENT_WINDOW, 2),",
            "current_rate=round(st.recent / deliveries.RECENT_WINDOW, 3),",
            "a whole count over RECENT_WINDOW (10.0 s) has one decimal at most: rounded to"
            " 2 or 3 places it is the same float",
        ),
    ],
    "routes_console": [
        (
            '@get("/console", include_in_schema=False, sync_to_thread=False)',
            '@get("/console", include_in_schema=False, sync_to_thread=True)',
            _THREAD,
        ),
        (
            '@get("/console/{name:str}", include_in_schema=False, sync_to_thread=False)',
            '@get("/console/{name:str}", include_in_schema=False, sync_to_thread=True)',
            _THREAD,
        ),
    ],
}
