from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from accounts import views as account_views
from channels_app import views as channel_views
from channels_app.api import ChannelAuditLog, ChannelViewSet, MemberViewSet
from channels_app.orgs import api as org_api
from channels_app.orgs import views as org_views
from channels_app.tokens import views as token_views
from channels_app.tokens.api import ApiTokenViewSet
from packages_app import api as packages_api
from packages_app import views as package_views
from packages_app.anaconda import urls as anaconda_urls
from packages_app.conda import urls as conda_urls
from packages_app.conda.urls import CHANNEL
from packages_app.upstream import api as mirror_api
from registry import security

router = SimpleRouter(trailing_slash="/?")
router.register("channels", ChannelViewSet, basename="channel")
router.register(r"channels/(?P<channel_name>[^/]+)/members", MemberViewSet, basename="member")
router.register("tokens", ApiTokenViewSet, basename="token")

api_v1 = [
    path("upload/<str:channel>", packages_api.PrefixUpload.as_view(), name="upload-prefix"),
    path(
        "delete/<str:channel>/<str:subdir>/<str:filename>",
        packages_api.DeletePackageFile.as_view(),
        name="delete-file",
    ),
    path(
        "yank/<str:channel>/<str:subdir>/<str:filename>",
        packages_api.YankPackageFile.as_view(),
        name="yank-file",
    ),
    path(
        "unyank/<str:channel>/<str:subdir>/<str:filename>",
        packages_api.UnyankPackageFile.as_view(),
        name="unyank-file",
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
        "channels/<str:channel_name>/packages/<str:package_name>/install/",
        packages_api.PackageInstall.as_view(),
        name="channel-package-install",
    ),
    path(
        "channels/<str:channel_name>/files/",
        packages_api.ChannelFiles.as_view(),
        name="channel-files",
    ),
    path(
        "channels/<str:channel_name>/files/<str:subdir>/<str:filename>/labels/",
        packages_api.FileLabels.as_view(),
        name="file-labels",
    ),
    path(
        "channels/<str:channel_name>/labels/",
        packages_api.ChannelLabels.as_view(),
        name="channel-labels",
    ),
    path(
        "channels/<str:channel_name>/labels/<str:label>/move/",
        packages_api.LabelMove.as_view(),
        name="label-move",
    ),
    path(
        "channels/<str:channel_name>/statistics/",
        packages_api.ChannelStatistics.as_view(),
        name="channel-statistics",
    ),
    path(
        "channels/<str:channel_name>/packages/<str:package_name>/statistics/",
        packages_api.PackageStatistics.as_view(),
        name="package-statistics",
    ),
    path("channels/<str:channel_name>/audit/", ChannelAuditLog.as_view(), name="channel-audit"),
    path(
        "channels/<str:channel_name>/mirror-runs/",
        mirror_api.MirrorRuns.as_view(),
        name="mirror-runs",
    ),
    path(
        "channels/<str:channel_name>/mirror-runs/<int:run_id>/",
        mirror_api.MirrorRunDetail.as_view(),
        name="mirror-run",
    ),
    path("search", packages_api.Search.as_view(), name="search"),
    # Organisations, their members, invitations and teams.
    path("orgs/", org_api.OrganizationList.as_view(), name="org-list"),
    path("orgs/<str:org>/", org_api.OrganizationDetail.as_view(), name="org-detail"),
    path("orgs/<str:org>/members/", org_api.OrganizationMembers.as_view(), name="org-members"),
    path(
        "orgs/<str:org>/members/<str:username>/",
        org_api.OrganizationMemberDetail.as_view(),
        name="org-member",
    ),
    path(
        "orgs/<str:org>/invitations/",
        org_api.OrganizationInvitations.as_view(),
        name="org-invitations",
    ),
    path(
        "orgs/<str:org>/invitations/<int:invitation_id>/",
        org_api.OrganizationInvitation.as_view(),
        name="org-invitation",
    ),
    path("orgs/<str:org>/teams/", org_api.OrganizationTeams.as_view(), name="org-teams"),
    path("orgs/<str:org>/teams/<str:team>/", org_api.OrganizationTeam.as_view(), name="org-team"),
    path(
        "orgs/<str:org>/teams/<str:team>/members/<str:username>/",
        org_api.TeamMemberView.as_view(),
        name="org-team-member",
    ),
    path(
        "orgs/<str:org>/teams/<str:team>/channels/<str:channel>/",
        org_api.TeamChannelView.as_view(),
        name="org-team-channel",
    ),
    path("orgs/<str:org>/channels/", org_api.OrganizationChannels.as_view(), name="org-channels"),
    path("invitations/", org_api.MyInvitations.as_view(), name="my-invitations"),
    path(
        "invitations/<int:invitation_id>/accept/",
        org_api.AnswerInvitation.as_view(answer="accept"),
        name="invitation-accept",
    ),
    path(
        "invitations/<int:invitation_id>/decline/",
        org_api.AnswerInvitation.as_view(answer="decline"),
        name="invitation-decline",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI's page carries a <style> element: the one page whose policy allows them.
    path(
        "docs/",
        security.with_policy(
            SpectacularSwaggerSplitView.as_view(url_name="api:schema"),
            security.policy(style_src="'self' 'unsafe-inline'"),
        ),
        name="docs",
    ),
    path("", include(router.urls)),
]

# Web pages of one channel: /<channel>/ is the URL people also give conda. Their second
# segments are never a platform name, so conda file paths cannot collide with them.
channel_pages = [
    path("", package_views.channel_page, name="channel"),
    path("upload/", channel_views.channel_upload, name="channel-upload"),
    path("members/", channel_views.channel_members, name="channel-members"),
    path("settings/", channel_views.channel_settings, name="channel-settings"),
    path("audit/", channel_views.channel_audit, name="channel-audit"),
    path("statistics/", package_views.channel_statistics, name="channel-statistics"),
    path("mirror-runs/", package_views.mirror_run_now, name="mirror-run-now"),
    path("delete/", channel_views.channel_delete, name="channel-delete"),
    path("transfer/", channel_views.channel_transfer, name="channel-transfer"),
    path("packages/<str:package_name>/", package_views.package_page, name="package"),
    path(
        "packages/<str:package_name>/files/<str:subdir>/<str:filename>/delete/",
        package_views.delete_file,
        name="package-file-delete",
    ),
    path(
        "packages/<str:package_name>/files/<str:subdir>/<str:filename>/yank/",
        package_views.yank_file,
        name="package-file-yank",
    ),
    path(
        "packages/<str:package_name>/files/<str:subdir>/<str:filename>/labels/",
        package_views.label_file,
        name="package-file-labels",
    ),
]

urlpatterns = [
    path("", package_views.home, name="home"),
    path("search/", package_views.search, name="search"),
    path("channels/", channel_views.channel_list, name="channel-list"),
    path("channels/new/", channel_views.channel_new, name="channel-new"),
    path("orgs/", org_views.org_list, name="org-list"),
    path("orgs/new/", org_views.org_new, name="org-new"),
    path(
        "orgs/invitations/<int:invitation_id>/accept/",
        org_views.invitation_accept,
        name="invitation-accept",
    ),
    path(
        "orgs/invitations/<int:invitation_id>/decline/",
        org_views.invitation_decline,
        name="invitation-decline",
    ),
    path("orgs/<str:org>/", org_views.org_page, name="org"),
    path("orgs/<str:org>/members/", org_views.org_members, name="org-members"),
    path("orgs/<str:org>/teams/", org_views.org_teams, name="org-teams"),
    path("orgs/<str:org>/teams/<str:team>/", org_views.org_team, name="org-team"),
    path("orgs/<str:org>/settings/", org_views.org_settings, name="org-settings"),
    path("orgs/<str:org>/delete/", org_views.org_delete, name="org-delete"),
    path("settings/", account_views.profile, name="profile"),
    path("settings/keys/", token_views.api_keys, name="api-keys"),
    path("settings/keys/<int:key_id>/revoke/", token_views.revoke_key, name="api-key-revoke"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    # Namespaced: the router's names (channel-list, ...) must not shadow the pages'.
    path("api/v1/", include((api_v1, "api"))),
    # anaconda-client's and rattler-build's anaconda.org uploads: the site URL to configure.
    path("api/anaconda/", include((anaconda_urls.urlpatterns, "anaconda"))),
    # The site URL as anaconda-client asks it (HEAD, trailing slash trimmed).
    path("api/anaconda", anaconda_urls.views.Site.as_view(), name="anaconda-site"),
    path(
        "api/channels/<str:channel>/upload/<str:filename>",
        packages_api.QuetzUpload.as_view(),
        name="upload-quetz",
    ),
    re_path(rf"^{CHANNEL}/", include(channel_pages)),
    # Conda files (/<channel>/<subdir>/<file>, channeldata.json, a label's, by token): last,
    # so that a channel's pages win.
    path("", include(conda_urls)),
]
# Answered by middleware before URL resolution: those conda routes (their fast path) and
# /healthz, /readyz and /metrics (registry/operations.py), which are in no table. All of
# them, and why, are listed in the docstring of packages_app/conda/urls.py.
# JSON under /api/ and for clients that do not take HTML; Django's pages otherwise.
handler400 = "registry.errors.bad_request"
handler403 = "registry.errors.permission_denied"
handler404 = "registry.errors.page_not_found"
handler500 = "registry.errors.server_error"
