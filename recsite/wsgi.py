import os

from django.conf import settings

from recsite.wsgi_dispatch import get_dispatching_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
# /api/ and the probes through the short middleware list, the admin through the full one.
application = get_dispatching_application()

# After get_dispatching_application(): serving imports models, loadable only once Django
# is set up.
from recommender.online.recording import recording_start  # noqa: E402
from recommender.serving.registry import registry  # noqa: E402
from recsite.wsgi_serving import ServingFastPath, leading_serving_routes  # noqa: E402

# GET of the serving endpoints without the URLconf walk and the middleware chain.
application.serving = ServingFastPath(leading_serving_routes())

# Load the active models and start watching for promotions in this process (each
# gunicorn worker imports this module after the fork).
if settings.RECSITE_SERVING_WATCH:
    registry.start()
# Write the lists this process serves (buffered) in the background.
recording_start()
