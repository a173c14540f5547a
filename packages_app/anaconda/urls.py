"""The routes of the anaconda.org API, under ``/api/anaconda/`` (registry/urls.py).

``<owner>`` is a Wharf channel; anaconda's ``<basename>`` is ``<subdir>/<filename>``.
"""

from django.urls import path

from . import views

FILE = "<str:owner>/<str:name>/<str:version>/<str:subdir>/<str:filename>"

urlpatterns = [
    path("", views.Site.as_view(), name="site"),
    path("user", views.CurrentUser.as_view(), name="user"),
    path("user/<str:login>", views.Owner.as_view(), name="owner"),
    path("package/<str:owner>/<str:name>", views.Package.as_view(), name="package"),
    path("release/<str:owner>/<str:name>/<str:version>", views.Release.as_view(), name="release"),
    path(f"stage/{FILE}", views.Stage.as_view(), name="stage"),
    # Where a staged file's bytes go (the stage answer's post_url); no credentials.
    path("upload", views.StagedBytes.as_view(), name="upload"),
    path(f"commit/{FILE}", views.Commit.as_view(), name="commit"),
    path(f"dist/{FILE}", views.Distribution.as_view(), name="dist"),
]
