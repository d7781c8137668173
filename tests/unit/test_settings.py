"""Configuration: loaded once, typed, frozen, with errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ulak.settings import ConfigError, OperatorConfig, load_settings
from ulak.text import Concat

PASSWORDS = {
    "ULAK_TURKCELL_PASSWORD": "tcell-pw-9",
    "ULAK_VODAFONE_PASSWORD": "v",
    "ULAK_TELEKOM_PASSWORD": "k",
}

OPERATOR = """
operators:
  - name: op
    prefixes: ["90530"]
    tps: 100
    binds:
      - {name: b1, host: 127.0.0.1, port: 2775, system_id: sys, password_env: OP_PW}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def test_the_shipped_config_loads() -> None:
    settings = load_settings(environ=PASSWORDS)
    assert [o.name for o in settings.operators] == ["turkcell", "vodafone-tr", "turk-telekom"]
    assert settings.operator("turk-telekom").concatenation is Concat.SAR
    assert settings.redis.url is None
    bind = settings.operators[0].binds[0]
    assert bind.password.get_secret_value() == "tcell-pw-9"
    assert "tcell-pw-9" not in repr(bind) + repr(settings)


def test_models_are_frozen() -> None:
    settings = load_settings(environ=PASSWORDS)
    with pytest.raises(ValidationError):
        settings.operators[0].tps = 5  # type: ignore[misc]


def test_environment_overrides_yaml(tmp_path: Path) -> None:
    write(tmp_path, "ulak.yaml", "redis: {url: null}\nray: {num_cpus: 1}\n")
    settings = load_settings(
        tmp_path, environ={"ULAK_REDIS__URL": "redis://h:1/0", "ULAK_RAY__NUM_CPUS": "2"}
    )
    assert settings.redis.url == "redis://h:1/0"
    assert settings.ray.num_cpus == 2


def test_missing_password_variable_names_file_and_field(tmp_path: Path) -> None:
    write(tmp_path, "operators.yaml", OPERATOR)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, environ={})
    message = str(info.value)
    assert "operators.yaml" in message
    assert "operators[0].binds[0].password_env" in message
    assert "OP_PW is not set" in message


def test_wrong_type_names_file_and_field(tmp_path: Path) -> None:
    write(tmp_path, "operators.yaml", OPERATOR.replace("tps: 100", "tps: fast"))
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, environ={"OP_PW": "x"})
    assert "operators.yaml: operators[0].tps" in str(info.value)


def test_unknown_field_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "operators.yaml", OPERATOR.replace("tps: 100", "tps: 100\n    tsp: 5"))
    with pytest.raises(ConfigError, match=r"operators\[0\]\.tsp: Extra inputs are not permitted"):
        load_settings(tmp_path, environ={"OP_PW": "x"})


def test_bad_prefix(tmp_path: Path) -> None:
    write(tmp_path, "operators.yaml", OPERATOR.replace('["90530"]', '["+90530"]'))
    with pytest.raises(ConfigError, match="digits only"):
        load_settings(tmp_path, environ={"OP_PW": "x"})


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    write(tmp_path, "ulak.yaml", "ray: {num_cpus: 1}\n")
    with pytest.raises(ConfigError, match="environment variable ULAK_RAY__NUM_CPUS"):
        load_settings(tmp_path, environ={"ULAK_RAY__NUM_CPUS": "many"})


def test_section_defined_twice(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "ray: {}\n")
    write(tmp_path, "b.yaml", "ray: {}\n")
    with pytest.raises(ConfigError, match="already defined"):
        load_settings(tmp_path, environ={})


def test_not_yaml(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "ray: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(tmp_path, environ={})


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope", environ={})


def test_national_languages_are_named_and_checked() -> None:
    bind = {"name": "b", "host": "h", "port": 1, "system_id": "s", "password_env": "X"}
    op = OperatorConfig(name="o", prefixes=("90",), tps=1, binds=(bind,), national_languages=())
    assert op.languages == ()
    assert OperatorConfig(name="o", prefixes=("90",), tps=1, binds=(bind,)).languages == (1,)
    with pytest.raises(ValidationError, match="has no GSM shift tables here; use one of turkish, spanish"):
        OperatorConfig(name="o", prefixes=("90",), tps=1, binds=(bind,), national_languages=("klingon",))
