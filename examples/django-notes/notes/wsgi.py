"""The WSGI application, as `startproject` writes it, plus one step: the database is
brought up to date when an instance starts (this example's choice; a bigger project runs
`manage.py migrate` as a step of its own)."""

import os

from django.core.management import call_command
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "notes.settings")
application = get_wsgi_application()
call_command("migrate", interactive=False, verbosity=0)
