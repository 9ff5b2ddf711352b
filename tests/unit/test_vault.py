"""Secrets at rest: the seal opens only with its key, function and name, unaltered."""

import base64
import os
import stat

import pytest

from hearth.store import Store, Vault, VaultError
from hearth.store.vault import KEY_FILE, load_key

KEY = bytes(range(32))


def test_a_sealed_value_opens_again():
    vault = Vault(KEY)
    nonce, sealed = vault.seal("fn", "API_KEY", "s3cret \u00e9\u2603")
    assert len(nonce) == 12
    assert b"s3cret" not in sealed
    assert vault.open("fn", "API_KEY", nonce, sealed) == "s3cret \u00e9\u2603"


def test_every_seal_has_its_own_nonce():
    vault = Vault(KEY)
    first = vault.seal("fn", "A", "same")
    second = vault.seal("fn", "A", "same")
    assert first[0] != second[0] and first[1] != second[1]


def test_an_empty_value_is_a_value():
    vault = Vault(KEY)
    assert vault.open("fn", "A", *vault.seal("fn", "A", "")) == ""


@pytest.mark.parametrize("position", [0, 5, -1])  # the ciphertext, and the tag at the end
def test_a_changed_ciphertext_does_not_open(position):
    vault = Vault(KEY)
    nonce, sealed = vault.seal("fn", "A", "value")
    altered = bytearray(sealed)
    altered[position] ^= 1
    with pytest.raises(VaultError, match="secret A of fn does not open"):
        vault.open("fn", "A", nonce, bytes(altered))


@pytest.mark.parametrize(
    ("function", "name"),
    [("other", "A"), ("fn", "B"), ("fn", "a"), ("fn\0A", ""), ("f", "n\0A")],
)
def test_a_value_moved_to_another_function_or_name_does_not_open(function, name):
    vault = Vault(KEY)
    nonce, sealed = vault.seal("fn", "A", "value")
    with pytest.raises(VaultError):
        vault.open(function, name, nonce, sealed)


def test_another_key_or_nonce_does_not_open():
    nonce, sealed = Vault(KEY).seal("fn", "A", "value")
    with pytest.raises(VaultError, match="HEARTH_SECRET_KEY"):
        Vault(bytes(32)).open("fn", "A", nonce, sealed)
    with pytest.raises(VaultError):
        Vault(KEY).open("fn", "A", bytes(12), sealed)
    with pytest.raises(VaultError):
        Vault(KEY).open("fn", "A", nonce, sealed[:10])


def test_the_vault_never_shows_its_key():
    assert repr(Vault(KEY)) == "<Vault AES-256-GCM>"


# the key


def test_the_key_file_is_made_once_and_private(tmp_path):
    key = load_key(tmp_path, {})
    assert len(key) == 32
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode) == 0o600
    assert load_key(tmp_path, {}) == key


def test_the_variable_wins_over_the_file(tmp_path):
    load_key(tmp_path, {})
    text = base64.b64encode(KEY).decode()
    assert load_key(tmp_path, {"HEARTH_SECRET_KEY": text}) == KEY


def test_with_the_variable_no_file_is_made(tmp_path):
    load_key(tmp_path, {"HEARTH_SECRET_KEY": base64.b64encode(KEY).decode() + "\n"})
    assert not (tmp_path / KEY_FILE).exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not base64!", "is not base64"),
        (base64.b64encode(b"short").decode(), "holds 5 bytes; the secret key is 32 bytes"),
        ("", "holds 0 bytes"),
    ],
)
def test_a_bad_key_says_what_to_do(tmp_path, text, message):
    with pytest.raises(VaultError, match=message) as info:
        load_key(tmp_path, {"HEARTH_SECRET_KEY": text})
    assert "head -c 32 /dev/urandom | base64" in str(info.value)


def test_a_bad_key_file_is_named(tmp_path):
    (tmp_path / KEY_FILE).write_text("garbage")
    with pytest.raises(VaultError, match=f"{KEY_FILE} is not base64"):
        load_key(tmp_path, {})


# the store keeps only what the vault sealed


def test_the_store_holds_sealed_values_only(tmp_path):
    store = Store(tmp_path / "hearth.db")
    vault = Vault(KEY)
    store.put_secret("fn", "API_KEY", *vault.seal("fn", "API_KEY", "plain-text-value"))
    store.close()
    assert b"plain-text-value" not in (tmp_path / "hearth.db").read_bytes()
    wal = tmp_path / "hearth.db-wal"
    assert not wal.exists() or b"plain-text-value" not in wal.read_bytes()
    again = Store(tmp_path / "hearth.db")
    [(function, name, nonce, sealed)] = again.sealed_secrets("fn")
    assert vault.open(function, name, nonce, sealed) == "plain-text-value"
    again.close()
