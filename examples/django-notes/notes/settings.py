"""A one-app Django project whose database lives in HEARTH_DATA: the function's own
folder, kept across deploys and rollbacks (the code folder is replaced by each deploy, and
is read-only). Without Hearth, the database sits beside manage.py as usual."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("HEARTH_DATA") or BASE_DIR)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "development-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["notes"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "notes.urls"
WSGI_APPLICATION = "notes.wsgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA / "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
