from django.contrib.admin.apps import AdminConfig


class RecsiteAdminConfig(AdminConfig):
    """``django.contrib.admin`` with recsite's admin site (the dashboard page)."""

    default_site = "recsite.admin_site.RecsiteAdminSite"
