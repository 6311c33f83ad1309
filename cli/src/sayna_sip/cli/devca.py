"""The development certificate authority kept under the data dir (`.sayna-sip/dev-ca/`).

`sayna-sip up` passes its PEM to the services as SIP_HOOK_CA_BUNDLE and `sayna-sip sink`
issues its localhost certificate from it, so a local hook is trusted without touching
the system trust store. It is for development only: the key sits unencrypted on disk.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme

from sayna_sip.common.upstate import DEFAULT_DATA_DIR as DEFAULT_DATA_DIR  # one default

CA_DIR = "dev-ca"
CERT_FILE = "ca.pem"
KEY_FILE = "ca.key"


@dataclass(frozen=True)
class DevCA:
    ca: trustme.CA
    pem_path: Path


def dev_ca(data_dir: Path) -> DevCA:
    """Load the data dir's dev CA, creating it on first use (safe against a concurrent
    creator: the directory appears whole through an atomic rename)."""
    target = data_dir / CA_DIR
    if not (target / CERT_FILE).is_file():
        _create(data_dir, target)
    ca = trustme.CA.from_pem((target / CERT_FILE).read_bytes(), (target / KEY_FILE).read_bytes())
    return DevCA(ca, (target / CERT_FILE).resolve())


def _create(data_dir: Path, target: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".dev-ca-", dir=data_dir))
    try:
        ca = trustme.CA(organization_name="sayna-sip dev")
        ca.cert_pem.write_to_path(str(staging / CERT_FILE))
        key = staging / KEY_FILE
        key.touch(mode=0o600)
        ca.private_key_pem.write_to_path(str(key))
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / CERT_FILE).is_file():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
