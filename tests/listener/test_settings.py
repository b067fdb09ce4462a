"""Settings: flags over SYNC_LISTENER_* variables over defaults, checked before anything starts."""

from __future__ import annotations

import pytest

from sync_listener.settings import SettingsError, load_settings

ENV = {"SYNC_LISTENER_LOCATION_ID": "loc"}


def test_defaults() -> None:
    settings = load_settings([], ENV)
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.max_body_bytes == 256 * 1024
    assert settings.timestamp_tolerance_seconds == 300
    assert settings.debounce_seconds == 2
    assert settings.moco_to_contacts_command == ("meltano", "run", "moco-to-contacts")
    assert settings.contacts_to_moco_command == ("meltano", "run", "contacts-to-moco")
    assert settings.moco_webhook_secret is None


def test_flags_win_over_the_environment_and_commands_take_both_forms() -> None:
    env = {
        **ENV,
        "SYNC_LISTENER_PORT": "9000",
        # Meltano passes an array setting as JSON.
        "SYNC_LISTENER_MOCO_TO_CONTACTS_COMMAND": '["meltano", "--environment=prod", "run", "x"]',
        "SYNC_LISTENER_MOCO_TARGETS": "Contact, Comment",
    }
    settings = load_settings(
        ["--port", "0", "--contacts-to-moco-command", "meltano run 'contacts to moco'"], env
    )
    assert settings.port == 0
    assert settings.moco_to_contacts_command == ("meltano", "--environment=prod", "run", "x")
    assert settings.contacts_to_moco_command == ("meltano", "run", "contacts to moco")
    assert settings.moco_targets == frozenset({"Contact", "Comment"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "70000"),
        ("PORT", "http"),
        ("MAX_BODY_BYTES", "0"),
        ("DEBOUNCE_SECONDS", "-1"),
        ("MOCO_TO_CONTACTS_COMMAND", "[1, 2]"),
        ("MOCO_TO_CONTACTS_COMMAND", "[]"),
        ("RUN_DIRECTORY", "/no/such/folder"),
        ("LOG_LEVEL", "LOUD"),
        ("CONTACTS_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
        ("LOCATION_ID", "x" * 65),
    ],
)
def test_bad_values_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name.lower()):
        load_settings([], {**ENV, f"SYNC_LISTENER_{name}": value})


def test_a_key_of_the_wrong_kind_is_refused(keys) -> None:
    from cryptography.hazmat.primitives import serialization

    rsa_pem = (
        keys.rsa.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(SettingsError, match="must be an Ed25519 public key"):
        load_settings([], {**ENV, "SYNC_LISTENER_CONTACTS_PUBLIC_KEY": rsa_pem})


def test_secret_is_not_in_repr_or_errors() -> None:
    secret = "0123456789abcdef0123456789abcdef"
    settings = load_settings([], {**ENV, "SYNC_LISTENER_MOCO_WEBHOOK_SECRET": secret})
    assert settings.moco_webhook_secret == secret
    assert secret not in repr(settings)
    with pytest.raises(SettingsError) as error:
        load_settings([], {**ENV, "SYNC_LISTENER_MOCO_WEBHOOK_SECRET": secret + " "})
    assert secret not in str(error.value)
