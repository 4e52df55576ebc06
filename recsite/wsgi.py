import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
application = get_wsgi_application()

# After get_wsgi_application(): serving imports models, loadable only once Django is set up.
from recommender.serving import registry  # noqa: E402

# Load the active models and start watching for promotions in this process (each
# gunicorn worker imports this module after the fork).
if settings.RECSITE_SERVING_WATCH:
    registry.start()
