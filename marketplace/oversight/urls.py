"""URLs of the regulators' dashboards, mounted under /regulator/."""

from django.urls import path

from marketplace.oversight import views

app_name = "oversight"

urlpatterns = [
    path("", views.index, name="index"),
    path("<slug:name>/", views.dashboard, name="dashboard"),
    path("<slug:name>/csv/<slug:chart>/", views.chart_csv, name="csv"),
]
