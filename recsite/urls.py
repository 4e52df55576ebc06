from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from recsite import api_errors, health, metrics

handler404 = "recsite.api_errors.json_404"
handler500 = "recsite.api_errors.json_500"

# The API first (the serving endpoints first among its routes): Django tries the patterns
# in order on every request, and the admin's are many.
urlpatterns = [
    path("api/v1/", include("recommender.urls")),
    path("api/v1/", include("training.urls")),
    path("api/v1/", include("recommender.online.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    # after every API route: whatever else is under /api/ is a JSON 404
    re_path(r"^api/", api_errors.api_not_found, name="api-not-found"),
]
