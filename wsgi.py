"""WSGI entry point: `gunicorn wsgi:app`. Follows addon changes without a restart."""
from core.reloader import AddonReloader

app = AddonReloader()
