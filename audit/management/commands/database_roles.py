"""``python manage.py database_roles --app-role registry_app [--create] [--print]``: the web's own role.

Run as the owner of the tables (the role that runs ``migrate``), or a superuser. See
audit/database_roles.py and the README's Deployment section.
"""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from audit.database_roles import apply, create_role_sql, current_grants


class Command(BaseCommand):
    help = (
        "Grant the application's database role what the web server needs and no more: audit tables "
        "SELECT and INSERT only, no TRUNCATE, no ownership. --create makes the role first."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--app-role", required=True, help="The role the web server connects as")
        parser.add_argument(
            "--create",
            action="store_true",
            help="Create the role (LOGIN, not a superuser); its password is read from DATABASE_APP_PASSWORD",
        )
        parser.add_argument(
            "--print", action="store_true", dest="print_only", help="Print the SQL; change nothing"
        )

    def handle(self, *args, app_role: str, create: bool, print_only: bool, **options) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("Database roles are a PostgreSQL deployment; this database is not PostgreSQL.")
        password = os.environ.get("DATABASE_APP_PASSWORD") or None
        try:
            statements = []
            if create:
                statements += create_role_sql(
                    app_role, database=connection.settings_dict["NAME"], password=password
                )
            statements += current_grants(app_role)
        except ValueError as error:
            raise CommandError(str(error)) from error
        if print_only:
            for statement in statements:
                self.stdout.write(statement.replace("%(password)s", "'…'") + ";")
            return
        with transaction.atomic():
            apply(statements, params={"password": password})
        self.stdout.write(
            self.style.SUCCESS(
                f"{app_role}: {len(statements)} statements applied. Point the web server's DATABASE_URL at this "
                "role and set DATABASE_APP_ROLE so later migrations renew its grants."
            )
        )
