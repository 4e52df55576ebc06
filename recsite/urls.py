from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from recsite import health, metrics

handler404 = "recsite.api_errors.json_404"
handler500 = "recsite.api_errors.json_500"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("recommender.urls")),
    path("api/v1/", include("training.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]
