import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
application = get_wsgi_application()

# Load the active models and start watching for promotions in this process (each
# gunicorn worker imports this module after the fork).
from django.conf import settings  # noqa: E402

if settings.RECSITE_SERVING_WATCH:
    from recommender.serving import registry  # noqa: E402

    registry.start()
