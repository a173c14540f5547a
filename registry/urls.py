from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from accounts.api import ApiTokenViewSet
from channels_app.api import ChannelViewSet, MemberViewSet
from channels_app.views import home
from packages_app import api as packages_api
from packages_app.serving import channel_file

router = SimpleRouter(trailing_slash="/?")
router.register("channels", ChannelViewSet, basename="channel")
router.register(r"channels/(?P<channel_name>[^/]+)/members", MemberViewSet, basename="member")
router.register("tokens", ApiTokenViewSet, basename="token")

CHANNEL = r"(?P<channel>[a-z0-9][a-z0-9._-]*)"

api_v1 = [
    path("upload/<str:channel>", packages_api.PrefixUpload.as_view(), name="upload-prefix"),
    path(
        "delete/<str:channel>/<str:subdir>/<str:filename>",
        packages_api.DeletePackageFile.as_view(),
        name="delete-file",
    ),
    path("reindex/<str:channel>/<str:subdir>", packages_api.Reindex.as_view(), name="reindex"),
    path(
        "channels/<str:channel_name>/packages/",
        packages_api.ChannelPackages.as_view(),
        name="channel-packages",
    ),
    path(
        "channels/<str:channel_name>/packages/<str:package_name>/",
        packages_api.ChannelPackage.as_view(),
        name="channel-package",
    ),
    path(
        "channels/<str:channel_name>/files/",
        packages_api.ChannelFiles.as_view(),
        name="channel-files",
    ),
    path("search", packages_api.Search.as_view(), name="search"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include(router.urls)),
]

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path(
        "api/channels/<str:channel>/upload/<str:filename>",
        packages_api.QuetzUpload.as_view(),
        name="upload-quetz",
    ),
    re_path(rf"^t/(?P<token>[A-Za-z0-9-]+)/{CHANNEL}/(?P<path>.+)$", channel_file),
    re_path(rf"^{CHANNEL}/(?P<path>.+)$", channel_file, name="channel-file"),
]
