"""A hook record is only ever the hook of the key it is stored under: a value copied
under another host's key (someone with NATS write access) is ignored and logged, never
shadowing the real hook, and deleting it leaves the real one. Sealed secrets are bound to
the host, so a record keeps opening only where it belongs; records as the previous
release wrote them still read and open."""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.js import JetStreamContext

from sayna_sip.common import hook_secrets, topology
from sayna_sip.common.config import ServerConfig, SipConfig
from sayna_sip.common.hook import Hook
from sayna_sip.common.hook_directory import HookDirectory, read_hook, snapshot
from sayna_sip.common.hosts import host_token
from sayna_sip.common.secretbox import SecretBoxError

REAL = "pbx.tenant-a.example"
OTHER = "pbx.tenant-b.example"
KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
# A runtime hook with its own secret, byte for byte as the previous release stored it.
PREVIOUS = (
    b'{"host":"pbx.tenant-a.example","url":"https://hooks.tenant-a.example/sip",'
    b'"source":"runtime","updated_at":"2026-12-06T22:08:35Z","secrets":[{"id":'
    b'"sec_acb019b4c0e8","fingerprint":"f74e1720","sealed":"v1.3eb1bd43.DU78wgy7QDzK+sQTG1'
    b'vR8MaNHQzshQmyloKodebYKaeRCoVw872MDUpnSwotNpCpRlDMXo9fKHgg7BWmsQSR6EFV",'
    b'"created_at":"2026-12-06T22:08:35Z"}]}'
)
PREVIOUS_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def keyed() -> SipConfig:
    env = {"SIP_ROOM_PREFIX": "sip-", "SIP_ALLOWED_ADDRESSES": "10.0.0.1", "SIP_SECRETS_KEY": KEY}
    sip = ServerConfig.from_env(env).sip
    assert sip is not None
    return sip


async def changed(seen: asyncio.Event) -> None:
    """Wait for the directory's next change."""
    await asyncio.wait_for(seen.wait(), 5)
    seen.clear()


async def test_a_copy_under_another_key_is_ignored_and_its_deletion_keeps_the_real_hook(
    jetstream: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    real = Hook.new(REAL, "https://hooks.tenant-a.example/sip", "runtime")
    forged = real.changed(url="https://attacker.example/collect")
    await kv.put(host_token(REAL), real.encode())
    seen = asyncio.Event()
    directory = HookDirectory(kv, on_change=seen.set)
    await directory.start()
    seen.clear()
    try:
        with caplog.at_level(logging.WARNING, "sayna_sip.hooks"):
            await kv.put(host_token(OTHER), forged.encode())
            await changed(seen)
        assert "event=hook_record_misplaced" in caplog.text
        assert directory.match(REAL) == real and directory.match(OTHER) is None
        assert await directory.lookup(OTHER) is None  # the KV read on a miss agrees
        assert (await read_hook(kv, host_token(OTHER)))[0] is None
        assert [h.url for h in await snapshot(kv)] == [real.url]

        await kv.delete(host_token(OTHER))
        await changed(seen)
        assert directory.match(REAL) == real and len(directory) == 1
    finally:
        await directory.stop()


async def test_a_key_overwritten_by_a_foreign_record_drops_what_it_held(
    jetstream: JetStreamContext,
) -> None:
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    await kv.put(host_token(OTHER), Hook.new(OTHER, "https://b.example/h", "runtime").encode())
    seen = asyncio.Event()
    directory = HookDirectory(kv, on_change=seen.set)
    await directory.start()
    seen.clear()
    try:
        foreign = Hook.new(REAL, "https://attacker.example/collect", "runtime")
        await kv.put(host_token(OTHER), foreign.encode())
        await changed(seen)
        assert len(directory) == 0 and directory.match(REAL) is None
    finally:
        await directory.stop()


def test_a_sealed_secret_opens_only_for_its_own_host() -> None:
    sip = keyed()
    record = Hook.decode(PREVIOUS)
    assert hook_secrets.signing_secrets(record, record.endpoint_list()[0], sip, 0) == (
        PREVIOUS_SECRET,
    )
    moved = Hook.decode(PREVIOUS.replace(REAL.encode(), OTHER.encode()))
    with pytest.raises(SecretBoxError):
        hook_secrets.signing_secrets(moved, moved.endpoint_list()[0], sip, 0)


async def test_a_record_the_previous_release_wrote_still_reads_and_opens(
    jetstream: JetStreamContext,
) -> None:
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    await kv.put(host_token(REAL), PREVIOUS)
    directory = HookDirectory(kv)
    await directory.start()
    try:
        hook = directory.match(REAL)
        assert hook is not None and hook.url == "https://hooks.tenant-a.example/sip"
        assert hook_secrets.signing_secrets(hook, hook.endpoint_list()[0], keyed(), 0) == (
            PREVIOUS_SECRET,
        )
    finally:
        await directory.stop()
