"""The hooks API's store on a real `sip_hooks` bucket: what each refusal says (the
`{"error","message"}` bodies of the hooks and endpoints routes), the secrets it seals,
and its log lines. The routes themselves are tested in test_hooks_api.py."""

from __future__ import annotations

import logging

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from sayna_sip.common import topology
from sayna_sip.common.hook import Hook, HookEntry
from sayna_sip.common.secretbox import SecretBox, generate_key
from sayna_sip.ingress.errors import BadRequest, Conflict, IngressError, NotFound, Unavailable
from sayna_sip.ingress.hooks import HookStore
from tests.common.test_hookstore import OtherWriter
from tests.fixtures.nats import NatsServer

SECRET = "tenant-secret-of-32-characters!!"


@pytest.fixture
async def kv(jetstream: JetStreamContext) -> KeyValue:
    return await jetstream.key_value(topology.HOOKS_BUCKET)


def write(host: str, secret: str | None = None) -> HookEntry:
    return HookEntry(host=host, url=f"https://{host}/hook", secret=secret)


def refusal(raised: pytest.ExceptionInfo[IngressError]) -> tuple[type, str, str]:
    return type(raised.value), raised.value.code, str(raised.value)


async def test_nothing_is_read_or_written_while_nats_is_disconnected(kv: KeyValue) -> None:
    store = HookStore(kv, connected=lambda: False)
    expected = (Unavailable, "nats_unavailable", "NATS is not connected; retry later")
    for call in (store.all(), store.get("a.example.com"), store.upsert([write("a.example.com")])):
        with pytest.raises(IngressError) as raised:
            await call
        assert refusal(raised) == expected
    with pytest.raises(IngressError) as raised:
        await store.remove(["a.example.com"])
    assert refusal(raised) == expected
    assert await HookStore(kv).all() == []  # connected unless told otherwise


async def test_a_secret_without_the_secrets_key_is_refused_before_any_write(kv: KeyValue) -> None:
    store = HookStore(kv)
    with pytest.raises(IngressError) as raised:
        await store.upsert([write("a.example.com"), write("b.example.com", SECRET)])
    assert refusal(raised) == (
        BadRequest,
        "secrets_key_missing",
        "A hook secret or header needs SIP_SECRETS_KEY (the key that encrypts them at rest)",
    )
    with pytest.raises(IngressError) as raised:
        store.box()
    assert refusal(raised) == (
        BadRequest,
        "secrets_key_missing",
        "Hook secrets need SIP_SECRETS_KEY (the key that encrypts secrets at rest)",
    )
    assert await store.all() == []


async def test_a_secret_is_stored_sealed_and_kept_by_writes_without_one(kv: KeyValue) -> None:
    box = SecretBox.from_setting(generate_key())
    store = HookStore(kv, box=box)
    assert store.box() is box
    (saved,) = await store.upsert([write("a.example.com", SECRET)])
    (sealed,) = saved.secrets
    assert box.open(sealed.sealed, "a.example.com") == SECRET
    entry = await kv.get(saved.key)
    assert SECRET.encode() not in (entry.value or b"")  # never in clear in NATS
    (again,) = await store.upsert([write("a.example.com")])  # a new URL, no secret sent
    assert again.secrets == saved.secrets


async def test_get_and_change_answer_404_for_an_unknown_host_and_409_for_a_static_one(
    kv: KeyValue,
) -> None:
    store = HookStore(kv)
    static = Hook.new("static.example.com", "https://static.example.com/h", "config")
    await kv.put(static.key, static.encode())
    for call in (
        store.get("none.example.com"),
        store.change("none.example.com", lambda h: h.changed(enabled=False)),
    ):
        with pytest.raises(IngressError) as raised:
            await call
        assert refusal(raised) == (
            NotFound,
            "hook_not_found",
            "no hook for host 'none.example.com'",
        )
    assert await store.get("static.example.com") == static
    with pytest.raises(IngressError) as raised:
        await store.change("static.example.com", lambda h: h.changed(enabled=False))
    assert refusal(raised) == (
        Conflict,
        "config_hook",
        "SIP hook host 'static.example.com' is defined in the static configuration and is"
        " read-only",
    )


async def test_change_stores_the_change_and_gives_up_with_503_on_a_hook_that_keeps_changing(
    nats_server: NatsServer, kv: KeyValue
) -> None:
    store = HookStore(kv)
    await store.upsert([write("a.example.com")])
    changed = await store.change("a.example.com", lambda h: h.changed(enabled=False))
    assert changed.enabled is False
    assert (await store.get("a.example.com")) == changed

    other = OtherWriter(nats_server.url)
    theirs = changed.changed(url="https://a.example.com/theirs")

    def change(current: Hook) -> Hook:
        other.put(theirs)  # another replica writes between every read and write
        return current.changed(enabled=True)

    try:
        with pytest.raises(IngressError) as raised:
            await store.change("a.example.com", change)
    finally:
        other.close()
    assert refusal(raised) == (
        Unavailable,
        "busy",
        "SIP hook host 'a.example.com' is being changed concurrently; retry",
    )
    assert (await store.get("a.example.com")).url == "https://a.example.com/theirs"


async def test_a_lost_nats_connection_is_a_503_and_a_warning(
    nats_client: NATS, kv: KeyValue, caplog: pytest.LogCaptureFixture
) -> None:
    await nats_client.close()
    with pytest.raises(IngressError) as raised:
        await HookStore(kv).get("a.example.com")
    kind, code, message = refusal(raised)
    assert (kind, code) == (Unavailable, "nats_unavailable")
    assert message.startswith("NATS KV is unavailable: ") and message.endswith(")")
    (warning,) = [r for r in caplog.records if r.name == "sayna_sip.ingress"]
    assert warning.levelno == logging.WARNING
    assert warning.getMessage().startswith("event=hook_store_unavailable error=")
    assert warning.getMessage().endswith(")")


async def test_a_hook_deleted_while_it_is_changed_answers_404(
    nats_server: NatsServer, kv: KeyValue
) -> None:
    store = HookStore(kv)
    (saved,) = await store.upsert([write("gone.example.com")])
    other = OtherWriter(nats_server.url)

    def change(current: Hook) -> Hook:
        other.delete(saved)  # another replica deletes it between this read and write
        return current.changed(enabled=False)

    try:
        with pytest.raises(IngressError) as raised:
            await store.change("gone.example.com", change)
    finally:
        other.close()
    assert refusal(raised) == (NotFound, "hook_not_found", "no hook for host 'gone.example.com'")


class InterposedBox(SecretBox):
    """A real SecretBox; while it seals, another replica writes the same hook (sealing
    happens between the store's read and its compare-and-set)."""

    def __init__(self, other: OtherWriter, theirs: Hook) -> None:
        super().__init__((bytes(32),))
        self.other, self.theirs = other, theirs

    def seal(self, secret: str, host: str) -> str:
        self.other.put(self.theirs)
        return super().seal(secret, host)


async def test_a_post_on_a_hook_that_keeps_changing_gives_up_with_503_busy(
    nats_server: NatsServer, kv: KeyValue
) -> None:
    (saved,) = await HookStore(kv).upsert([write("churn.example.com")])
    theirs = saved.changed(url="https://churn.example.com/theirs")
    other = OtherWriter(nats_server.url)
    try:
        with pytest.raises(IngressError) as raised:
            await HookStore(kv, box=InterposedBox(other, theirs)).upsert(
                [write("churn.example.com", SECRET)]
            )
    finally:
        other.close()
    assert refusal(raised) == (
        Unavailable,
        "busy",
        "SIP hook host 'churn.example.com' is being changed concurrently; retry",
    )
    assert (await HookStore(kv).get("churn.example.com")).url.endswith("/theirs")
