"""A member's notifications under /notifications/."""

from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("", views.notification_list, name="list"),
    path("bell/", views.bell, name="bell"),
    path("read/", views.mark_all_read, name="mark_all_read"),
    path("<int:pk>/open/", views.notification_open, name="open"),
    path("settings/", views.preferences, name="preferences"),
]
