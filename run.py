"""Desk's command line: ``python run.py`` serves; ``python run.py create-operator LOGIN`` adds an operator."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys

from aiohttp import web

from desk.settings import add_arguments, env_value, from_env


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for serve (the default) and create-operator."""
    parser = argparse.ArgumentParser(prog="run.py", description="Desk: a real-time agent desk for customer chat")
    add_arguments(parser)
    commands = parser.add_subparsers(dest="command")
    create = commands.add_parser("create-operator", help="create an operator (password from DESK_PASSWORD or a prompt)")
    create.add_argument("login")
    create.add_argument("--name", required=True)
    create.add_argument("--admin", action="store_true", help="make the operator an admin")
    add_arguments(create, default=argparse.SUPPRESS)
    return parser


async def _create_operator(args: argparse.Namespace) -> int:
    from desk.services import auth
    from desk.services.errors import ServiceError
    from desk.store import open_database
    from desk.store.migrate import migrate

    settings = from_env(args)
    db = open_database(settings.database_url)
    migrate(db)
    password = env_value("DESK_PASSWORD")
    if not password:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat: "):
            print("error: the passwords differ", file=sys.stderr)
            return 1
    try:
        op = await auth.create_operator(args.login, args.name, password, role="admin" if args.admin else "agent")
    except ServiceError as exc:
        detail = "; ".join(f"{k}: {v}" for k, v in (exc.fields or {}).items())
        print(f"error: {exc.message}" + (f" ({detail})" if detail else ""), file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"created {op.role} {op.login} (id {op.id})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "create-operator":
        return asyncio.run(_create_operator(args))
    from desk.app import create_app

    settings = from_env(args)
    print(f"Desk on http://{settings.host}:{settings.port} (database {settings.database_url})", flush=True)
    access_log = logging.getLogger("aiohttp.access") if settings.access_log else None
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, access_log=access_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
