"""The command line and start-up settings (CONTRACT §1): ``run.py``, ``create-operator``, flags and
environment variables, ``/healthz``."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

import run
from desk.app import create_app
from desk.settings import Settings, from_env
from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parent.parent


def desk_cli(*args: str, cwd: Path = ROOT, password: str | None = PASSWORD, stdin: str | None = None,
             ) -> subprocess.CompletedProcess[str]:
    """Run ``python run.py ARGS`` as an operator of the server does, without a terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESK_")}
    if password is not None:
        env["DESK_PASSWORD"] = password
    # A new session has no controlling terminal, so a password prompt reads standard input.
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=60, start_new_session=True, check=False)


async def sign_in(aiohttp_client, settings: Settings, login: str, password: str = PASSWORD) -> tuple[int, dict]:
    """Start the desk on ``settings`` and sign in; return (status, body)."""
    client = await aiohttp_client(create_app(dataclasses.replace(settings, run_workers=False)))
    try:
        response = await client.post("/api/session", json={"login": login, "password": password})
        return response.status, await response.json()
    finally:
        await client.close()


# --- create-operator -------------------------------------------------------------------------------


async def test_create_operator_takes_the_password_from_desk_password(aiohttp_client, settings):
    made = desk_cli("create-operator", "boss", "--name", "Big Boss", "--admin", "--db", settings.database_url)

    assert made.returncode == 0, made.stderr
    assert "boss" in made.stdout and "admin" in made.stdout
    status, body = await sign_in(aiohttp_client, settings, "boss")
    assert status == 200
    assert body["operator"]["name"] == "Big Boss" and body["operator"]["role"] == "admin"
    status, body = await sign_in(aiohttp_client, settings, "boss", "not the password")
    assert status == 401


async def test_an_existing_login_is_a_clear_error_and_exit_1(aiohttp_client, settings):
    assert desk_cli("create-operator", "boss", "--name", "Boss", "--admin", "--db", settings.database_url).returncode == 0

    again = desk_cli("create-operator", "boss", "--name", "Impostor", "--db", settings.database_url,
                     password="another password")

    assert again.returncode == 1
    assert "boss" in again.stderr and "exists" in again.stderr
    assert "Traceback" not in again.stderr and "created" not in again.stdout
    status, body = await sign_in(aiohttp_client, settings, "boss")
    assert status == 200 and body["operator"]["name"] == "Boss" and body["operator"]["role"] == "admin"


async def test_the_password_is_asked_at_the_prompt_without_desk_password(aiohttp_client, settings):
    made = desk_cli("create-operator", "anna", "--name", "Anna", "--db", settings.database_url,
                    password=None, stdin=f"{PASSWORD}\n{PASSWORD}\n")

    assert made.returncode == 0, made.stderr
    status, body = await sign_in(aiohttp_client, settings, "anna")
    assert status == 200 and body["operator"]["role"] == "agent"

    differ = desk_cli("create-operator", "olga", "--name", "Olga", "--db", settings.database_url,
                      password=None, stdin=f"{PASSWORD}\nsomething else\n")
    assert differ.returncode == 1
    assert "differ" in differ.stderr


def test_flags_before_the_subcommand_count(tmp_path):
    # Where a flag given before create-operator was ignored, the operator landed in ./desk.db.
    db = f"sqlite:///{tmp_path / 'chosen.db'}"

    made = desk_cli("--db", db, "create-operator", "boss", "--name", "Boss", cwd=tmp_path)

    assert made.returncode == 0, made.stderr
    assert (tmp_path / "chosen.db").exists()
    assert not (tmp_path / "desk.db").exists()
    again = desk_cli("create-operator", "boss", "--name", "Boss", "--db", db, cwd=tmp_path)
    assert again.returncode == 1 and "exists" in again.stderr


def test_help_describes_the_commands():
    shown = desk_cli("--help")
    assert shown.returncode == 0, shown.stderr
    for flag in ("--host", "--port", "--db", "--media", "--public-url", "--redis", "--embed-origins",
                 "create-operator"):
        assert flag in shown.stdout
    create = desk_cli("create-operator", "--help")
    assert create.returncode == 0
    assert "--name" in create.stdout and "--admin" in create.stdout


# --- settings: flags and environment -----------------------------------------------------------------


def test_defaults_without_flags_or_environment():
    settings = from_env(run.build_parser().parse_args([]), {})

    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.database_url == "sqlite:///desk.db"
    assert settings.media_dir == Path("media")
    assert settings.base_url == "http://127.0.0.1:8080"
    assert settings.redis_url is None and settings.embed_origins == ()
    assert settings.secret_key is None and settings.embed_secret is None


def test_every_setting_comes_from_the_environment():
    environ = {
        "DESK_HOST": "0.0.0.0", "DESK_PORT": "9001", "DESK_DATABASE_URL": "postgresql://desk@db/desk",
        "DESK_MEDIA_DIR": "/srv/media", "DESK_PUBLIC_URL": "https://desk.example.com/", "DESK_REDIS_URL": "redis://r:6379/0",
        "DESK_EMBED_ORIGINS": "https://intranet.example.com, https://portal.example.com/", "DESK_SECRET_KEY": "s3cret",
        "DESK_EMBED_SECRET": "embed-s3cret",
    }

    settings = from_env(run.build_parser().parse_args([]), environ)

    assert (settings.host, settings.port) == ("0.0.0.0", 9001)
    assert settings.database_url == "postgresql://desk@db/desk"
    assert settings.media_dir == Path("/srv/media")
    assert settings.base_url == "https://desk.example.com"
    assert settings.redis_url == "redis://r:6379/0"
    assert settings.embed_origins == ("https://intranet.example.com", "https://portal.example.com")
    assert (settings.secret_key, settings.embed_secret) == ("s3cret", "embed-s3cret")


def test_a_flag_wins_over_its_environment_variable():
    environ = {"DESK_HOST": "0.0.0.0", "DESK_PORT": "9001", "DESK_DATABASE_URL": "sqlite:///env.db",
               "DESK_MEDIA_DIR": "env-media", "DESK_PUBLIC_URL": "https://env.example.com",
               "DESK_EMBED_ORIGINS": "https://env.example.com"}
    args = run.build_parser().parse_args(["--port", "7000", "--db", "sqlite:///flag.db", "--media", "flag-media",
                                          "--public-url", "http://127.0.0.1:7000", "--embed-origins", "https://flag.example.com"])

    settings = from_env(args, environ)

    assert settings.port == 7000
    assert settings.database_url == "sqlite:///flag.db"
    assert settings.media_dir == Path("flag-media")
    assert settings.base_url == "http://127.0.0.1:7000"
    assert settings.embed_origins == ("https://flag.example.com",)
    assert settings.host == "0.0.0.0"  # no flag: the variable counts


def test_secrets_are_not_flags():
    parser = run.build_parser()
    for flag in ("--secret-key", "--embed-secret", "--password"):
        with pytest.raises(SystemExit):
            parser.parse_args([flag, "x"])


# --- health ------------------------------------------------------------------------------------------


async def test_healthz_answers_ok_while_the_database_answers(client):
    response = await client.get("/healthz")

    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == {"status": "ok"}
