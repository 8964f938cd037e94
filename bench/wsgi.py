"""Django's WSGI application for the baselines, served as a plain Django
project is: gunicorn's threaded workers (``bench.common.web``, how="wsgi")."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.stock_settings")
application = get_wsgi_application()
