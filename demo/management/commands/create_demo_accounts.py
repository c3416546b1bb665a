"""``python manage.py create_demo_accounts [--reset-passwords]``: one demo user per role."""

from django.core.management.base import BaseCommand

from demo.accounts import DEMO_ACCOUNTS, ensure_demo_accounts


class Command(BaseCommand):
    help = "Create the demo accounts (printing new passwords once); --reset-passwords issues new ones."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reset-passwords", action="store_true")

    def handle(self, *args, reset_passwords: bool, **options) -> None:
        issued = ensure_demo_accounts(reset_passwords=reset_passwords)
        if not issued:
            self.stdout.write(
                "Demo accounts exist (passwords were shown when created; "
                "new ones: python manage.py create_demo_accounts --reset-passwords)."
            )
            return
        self.stdout.write(
            self.style.SUCCESS("Demo accounts — note these passwords, they are not shown again:")
        )
        roles = {a.username: (a.role.label if a.role else "superuser") for a in DEMO_ACCOUNTS}
        for username, password in issued.items():
            self.stdout.write(f"  {username:<11} {password:<18} {roles[username]}")
