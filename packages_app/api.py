from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import TokenAuthentication, caller_of
from channels_app.access import Action, authorize, readable_channels
from packages_app.conda import statistics
from packages_app.discovery import catalog, install_channels
from packages_app.files import changes, deleting, labels, yanking
from packages_app.intake import archives, digests, uploads
from packages_app.models import MAIN_LABEL, Package, PackageFile
from packages_app.serializers import (
    ChannelLabelSerializer,
    FileLabelsSerializer,
    LabelChangeSerializer,
    LabelMoveResultSerializer,
    LabelMoveSerializer,
    PackageFileSerializer,
    PackageSummarySerializer,
    YankSerializer,
    accepted_upload,
)

LABEL_PARAMETER = OpenApiParameter(
    "label",
    str,
    many=True,
    description="Labels the file carries (repeat, or separate with commas); default main.",
)

# 201: stored; 200: the same bytes were already there, nothing changed.
UPLOAD_RESPONSES = {201: PackageFileSerializer, 200: PackageFileSerializer}


def _flag(request, name):
    return request.query_params.get(name, "").lower() in {"1", "true", "yes"}


def _upload_labels(request, form_fields=None):
    """The labels an upload asks for with ``?label=`` and form fields ``label`` (None:
    none named); 400 for a bad one."""
    named = request.query_params.getlist("label") + (form_fields or {}).get("label", [])
    try:
        return labels.for_upload(named)
    except labels.LabelError as exc:
        # A query parameter, not a field of a body: answered as the upload's "detail".
        raise uploads.UploadError(exc.message) from None


def _accept(request, target, received, force, file_labels):
    return uploads.accept(
        target, received, request.user, force=force, request=request, labels=file_labels
    )


def _upload_response(request, accepted):
    data, code = accepted_upload(request, accepted)
    return Response(data, status=code)


class BodyReadByView(BaseParser):
    """Accepts any body without reading it: the upload views stream it themselves.

    DRF parses the body when something asks for ``request.POST`` — the CSRF check of a
    browser session does — and without a parser that would answer 415.
    """

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return {}


class UploadView(APIView):
    """Uploads authenticate with a token, or with the browser session and its CSRF token
    (the web upload page sends each file as the raw body); they read the body themselves.
    """

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    parser_classes = [BodyReadByView]


class PrefixUpload(UploadView):
    """``POST /api/v1/upload/<channel>``, as rattler-build and pixi upload to prefix.dev.

    The package comes as the multipart part ``file`` (part headers ``x-file-name`` and
    ``x-file-sha256``) or as the raw body with ``X-File-Name`` / ``X-File-SHA256`` headers.
    Every digest declared is checked, a request header's with a multipart body too
    (packages_app/intake/digests.py).
    ``?force=true`` replaces an existing file (owners); otherwise the same bytes again are
    a 200 that changes nothing and other bytes a 409 (packages_app/intake/reuploads.py).
    ``?label=dev`` (repeated, or comma-separated) gives the file labels instead of main;
    so do multipart form fields ``label``.
    """

    @extend_schema(request=None, responses=UPLOAD_RESPONSES, parameters=[LABEL_PARAMETER])
    def post(self, request, channel):
        force = _flag(request, "force")
        target = authorize(
            caller_of(request), channel, Action.REPLACE_PACKAGE if force else Action.UPLOAD
        )
        _upload_labels(request)  # a bad ?label= answers before the body is read
        django_request = request._request
        stream = uploads.body_stream(django_request)
        if django_request.content_type == "multipart/form-data":
            received, fields = uploads.receive_multipart(django_request, stream, ("label",))
        else:
            received = uploads.receive_raw(
                stream,
                django_request.META.get("HTTP_X_FILE_NAME", ""),
                digests.in_request_headers(django_request.META),
            )
            fields = {}
        try:
            file_labels = _upload_labels(request, fields)
        except uploads.UploadError:
            received.discard()
            raise
        accepted = _accept(request, target, received, force, file_labels)
        return _upload_response(request, accepted)


class QuetzUpload(UploadView):
    """``POST /api/channels/<channel>/upload/<filename>?sha256=...&force=...`` (quetz style).

    The raw package is the body, often chunked; the token comes as ``X-API-Key``. The
    ``sha256`` parameter and any digest request header are checked.
    ``?label=`` as for :class:`PrefixUpload`.
    """

    @extend_schema(request=None, responses=UPLOAD_RESPONSES, parameters=[LABEL_PARAMETER])
    def post(self, request, channel, filename):
        force = _flag(request, "force")
        target = authorize(
            caller_of(request), channel, Action.REPLACE_PACKAGE if force else Action.UPLOAD
        )
        file_labels = _upload_labels(request)
        stream = uploads.body_stream(request._request)
        declared = digests.in_request_headers(request.META) + digests.given(
            "sha256", request.query_params.get("sha256"), "the query parameter sha256"
        )
        received = uploads.receive_raw(stream, filename, declared)
        accepted = _accept(request, target, received, force, file_labels)
        return _upload_response(request, accepted)


def _package_file(request, channel, subdir, filename, action):
    """The named file of the channel if the caller may do ``action`` to it; else 4xx."""
    target = authorize(caller_of(request), channel, action)
    package_file = PackageFile.objects.filter(
        channel=target, subdir=subdir, filename=filename
    ).first()
    if package_file is None:
        raise NotFound(f"No file '{subdir}/{filename}' in channel '{target.name}'.")
    return package_file


def _file_response(request, package_file):
    return Response(PackageFileSerializer(package_file, context={"request": request}).data)


class DeletePackageFile(APIView):
    """``DELETE /api/v1/delete/<channel>/<subdir>/<filename>``: remove a file and reindex."""

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, channel, subdir, filename):
        package_file = _package_file(request, channel, subdir, filename, Action.DELETE_PACKAGE)
        deleting.delete_package_file(package_file, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class YankPackageFile(APIView):
    """``POST /api/v1/yank/<channel>/<subdir>/<filename>`` with ``{"reason": ...}``: take
    the file out of the index (listed as removed) while its URL keeps working."""

    @extend_schema(request=YankSerializer, responses={200: PackageFileSerializer})
    def post(self, request, channel, subdir, filename):
        package_file = _package_file(request, channel, subdir, filename, Action.YANK_PACKAGE)
        reason = request.data.get("reason") if isinstance(request.data, dict) else None
        yanking.yank(package_file, reason, request=request)
        return _file_response(request, package_file)


class UnyankPackageFile(APIView):
    """``POST /api/v1/unyank/<channel>/<subdir>/<filename>``: put a yanked file back."""

    @extend_schema(request=None, responses={200: PackageFileSerializer})
    def post(self, request, channel, subdir, filename):
        package_file = _package_file(request, channel, subdir, filename, Action.YANK_PACKAGE)
        yanking.unyank(package_file, request=request)
        return _file_response(request, package_file)


class FileLabels(APIView):
    """``GET, POST /api/v1/channels/<channel>/files/<subdir>/<filename>/labels/``: a file's
    labels; POST ``{"add": [...], "remove": [...]}`` or ``{"labels": [...]}`` changes
    them (maintainers) and rebuilds the indexes of every label it gains or loses."""

    @extend_schema(responses={200: FileLabelsSerializer})
    def get(self, request, channel_name, subdir, filename):
        package_file = _package_file(request, channel_name, subdir, filename, Action.READ)
        return self._answer(package_file, package_file.label_names)

    @extend_schema(request=LabelChangeSerializer, responses={200: FileLabelsSerializer})
    def post(self, request, channel_name, subdir, filename):
        package_file = _package_file(request, channel_name, subdir, filename, Action.LABEL_PACKAGE)
        data = request.data if isinstance(request.data, dict) else {}
        if "labels" in data and ("add" in data or "remove" in data):
            raise ValidationError(
                {"labels": ["Give either 'labels' (all of them) or 'add' / 'remove', not both."]}
            )
        if not {"labels", "add", "remove"} & set(data):
            raise ValidationError(
                {"labels": ['Give {"add": [...], "remove": [...]} or {"labels": [...]}.']}
            )
        new = labels.change(
            package_file,
            add=data.get("add"),
            remove=data.get("remove"),
            labels=data.get("labels"),
            request=request,
        )
        return self._answer(package_file, new)

    @staticmethod
    def _answer(package_file, file_labels):
        return Response(
            {
                "channel": package_file.channel.name,
                "subdir": package_file.subdir,
                "filename": package_file.filename,
                "labels": file_labels,
            }
        )


class ChannelLabels(APIView):
    """``GET /api/v1/channels/<channel>/labels/``: the channel's labels and how many files
    carry each, ``main`` first."""

    @extend_schema(responses={200: ChannelLabelSerializer(many=True)})
    def get(self, request, channel_name):
        channel = authorize(caller_of(request), channel_name, Action.READ)
        return Response(labels.of_channel(channel))


class LabelMove(APIView):
    """``POST /api/v1/channels/<channel>/labels/<label>/move/``: give every file that
    carries ``<label>`` the label ``to`` and take ``<label>`` from it (``"copy": true``
    keeps it), all at once; ``package`` and ``version`` narrow it down. Maintainers and
    owners; both labels' indexes are rebuilt in the same transaction."""

    @extend_schema(request=LabelMoveSerializer, responses={200: LabelMoveResultSerializer})
    def post(self, request, channel_name, label):
        channel = authorize(caller_of(request), channel_name, Action.LABEL_PACKAGE)
        body = LabelMoveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        asked = body.validated_data
        moved = labels.move(
            channel, label, asked["to"], name=asked.get("package", ""),
            version=asked.get("version", ""), copy=asked["copy"], request=request,
        )  # fmt: skip
        if not moved:
            asked_for = [
                f"{key} '{asked[key]}'" for key in ("package", "version") if asked.get(key)
            ]
            of = f" of {' and '.join(asked_for)}" if asked_for else ""
            raise NotFound(f"No file{of} carries the label '{label}' in channel '{channel.name}'.")
        files = PackageFile.objects.filter(pk__in=[f.pk for f in moved]).prefetch_related("labels")
        return Response(
            {
                "channel": channel.name,
                "label": label,
                "to": asked["to"],
                "files": [
                    {"subdir": f.subdir, "filename": f.filename, "labels": f.label_names}
                    for f in files.order_by("subdir", "filename")
                ],
            }
        )


class Reindex(APIView):
    """``POST /api/v1/reindex/<channel>/<subdir>``: rebuild the subdir's index files, those
    of every label."""

    @extend_schema(request=None, responses={202: None})
    def post(self, request, channel, subdir):
        target = authorize(caller_of(request), channel, Action.UPLOAD)
        if subdir not in archives.SUBDIRS:
            raise ValidationError({"subdir": [f"'{subdir}' is not a known platform."]})
        revision = changes.reindex(target, subdir, request=request)[(subdir, MAIN_LABEL)]
        return Response(
            {"channel": target.name, "subdir": subdir, "requested_revision": revision},
            status=status.HTTP_202_ACCEPTED,
        )


class ChannelPackages(generics.GenericAPIView):
    """The packages of a channel: name, latest version, summary and platforms."""

    serializer_class = PackageSummarySerializer

    def get(self, request, channel_name):
        channel = authorize(caller_of(request), channel_name, Action.READ)
        packages = Package.objects.filter(channel=channel).select_related("channel")
        page = self.paginate_queryset(packages.order_by("name"))
        data = self.get_serializer(page, many=True).data
        totals = statistics.package_totals(channel, [package.name for package in page])
        for item in data:
            item["downloads"] = totals.get(item["name"], 0)
        return self.get_paginated_response(data)


class ChannelPackage(APIView):
    """One package of a channel with all its files."""

    @extend_schema(responses={200: PackageFileSerializer(many=True)})
    def get(self, request, channel_name, package_name):
        channel = authorize(caller_of(request), channel_name, Action.READ)
        package = (
            Package.objects.filter(channel=channel, name=package_name)
            .select_related("channel")
            .first()
        )
        if package is None:
            raise NotFound(f"No package '{package_name}' in channel '{channel.name}'.")
        files = (
            PackageFile.objects.filter(channel=channel, name=package_name)
            .select_related("channel", "uploader")
            .prefetch_related("labels")
            .order_by("subdir", "filename")
        )
        context = {"request": request}
        summary = PackageSummarySerializer(package).data
        summary["downloads"] = statistics.package_totals(channel, [package.name]).get(
            package.name, 0
        )
        summary["files"] = PackageFileSerializer(files, many=True, context=context).data
        return Response(summary)


class ChannelFiles(generics.ListAPIView):
    """The package files of a channel.

    Filter with ``?subdir=``, ``?name=``, ``?filename=`` and ``?state=``.
    """

    serializer_class = PackageFileSerializer
    filterset_fields = ["subdir", "name", "filename", "state"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator's dry run
            return PackageFile.objects.none()
        channel = authorize(caller_of(self.request), self.kwargs["channel_name"], Action.READ)
        return (
            PackageFile.objects.filter(channel=channel)
            .select_related("channel", "uploader")
            .prefetch_related("labels")
        )


class SearchPagination(PageNumberPagination):
    django_paginator_class = catalog.RankedPaginator


class Search(generics.GenericAPIView):
    """Packages matching ``q`` in every channel the caller may read.

    Exact name matches first, then names starting with ``q``, then other matches in the
    name, then matches in the summary only; within each, by name and channel.
    """

    serializer_class = PackageSummarySerializer
    pagination_class = SearchPagination

    @extend_schema(parameters=[OpenApiParameter("q", str, required=True)])
    def get(self, request):
        query = request.query_params.get("q", "").strip()
        if not query:
            raise ValidationError({"q": ["Give a search term with ?q=."]})
        results = catalog.search(readable_channels(caller_of(request)), query)
        page = self.paginate_queryset(results)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class PackageInstall(APIView):
    """The channels needed to install a package, by solving its dependencies.

    ``?platform=`` (default: that of its newest file), ``?version=`` and ``?label=``
    (default: main, or a label of the newest file when no file carries main) choose what
    to solve for. Only the channel and the related channels the caller may read are used.
    """

    @extend_schema(
        parameters=[
            OpenApiParameter("platform", str, description="A conda subdir, e.g. linux-64."),
            OpenApiParameter("version", str, description="A version of the package."),
            OpenApiParameter("label", str, description="A label of the channel, e.g. dev."),
        ],
        responses={200: dict},
    )
    def get(self, request, channel_name, package_name):
        caller = caller_of(request)
        channel = authorize(caller, channel_name, Action.READ)
        try:
            found = install_channels.for_package(
                channel,
                package_name,
                caller,
                platform=request.query_params.get("platform", ""),
                version=request.query_params.get("version", ""),
                label=request.query_params.get("label", ""),
            )
        except PackageFile.DoesNotExist as exc:
            raise NotFound(str(exc)) from None
        return Response(install_channels.as_data(request, channel, package_name, found))


def _days(request):
    try:
        return statistics.days_of(request.query_params.get("days"))
    except ValueError as exc:
        raise ValidationError({"days": [str(exc)]}) from None


class ChannelStatistics(APIView):
    """A channel's downloads (in total, per day, top packages), storage used and file count;
    for its owners. Readers find each package's numbers on the package.

    ``?days=`` (1 to 366, default 30) sets how far back ``per_day`` reaches.
    """

    @extend_schema(parameters=[OpenApiParameter("days", int)], responses={200: dict})
    def get(self, request, channel_name):
        channel = authorize(caller_of(request), channel_name, Action.MANAGE)
        return Response(statistics.channel_statistics(channel, _days(request)))


class PackageStatistics(APIView):
    """A package's downloads: in total, per version, per platform and per day (``?days=``)."""

    @extend_schema(parameters=[OpenApiParameter("days", int)], responses={200: dict})
    def get(self, request, channel_name, package_name):
        channel = authorize(caller_of(request), channel_name, Action.READ)
        if not Package.objects.filter(channel=channel, name=package_name).exists():
            raise NotFound(f"No package '{package_name}' in channel '{channel.name}'.")
        return Response(statistics.package_statistics(channel, package_name, _days(request)))
