"""The anaconda.org API as anaconda-client 1.16 and rattler-build call it to upload.

The owner of anaconda.org (a user or an organisation) is a Wharf channel, its labels are
anaconda's "channels" (``--label``). Packages and releases are not records of their own:
they are the channel's files of that name (and version), so creating one changes nothing
and the first commit makes it exist. Every route asks :mod:`channels_app.access`, and the
upload itself is :mod:`packages_app.intake.anaconda`, which hands over to the one intake.

Errors are JSON ``{"detail": ..., "error": ...}`` (anaconda-client shows ``error``); the
URL that takes a staged file's bytes answers refusals as S3 does, in XML, to clients that
do not ask for JSON (anaconda-client reads the XML's ``Code``).
"""

from xml.sax.saxutils import escape

from django.http import HttpResponse
from django.urls import reverse
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import TokenAuthentication, caller_of
from channels_app.access import Action, NotAuthenticated, NotFound, authorize
from packages_app.api import BodyReadByView
from packages_app.files import deleting
from packages_app.intake import anaconda
from packages_app.models import PackageFile


class AnacondaView(APIView):
    authentication_classes = [TokenAuthentication]
    # anaconda.org's protocol, for its clients (README): not part of Wharf's own API schema.
    schema = None

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if isinstance(response.data, dict):
            response.data["error"] = _message(response.data)
        return response

    def channel(self, owner, action=Action.READ):
        return authorize(caller_of(self.request), owner, action)

    def files(self, channel, **filters):
        return (
            PackageFile.objects.filter(channel=channel, **filters)
            .select_related("channel")
            .prefetch_related("labels")
            .order_by("version", "subdir", "filename")
        )

    def dist(self, package_file):
        f = package_file
        return {
            "basename": f"{f.subdir}/{f.filename}",
            "full_name": f"{f.channel.name}/{f.name}/{f.version}/{f.subdir}/{f.filename}",
            "owner": f.channel.name,
            "package": f.name,
            "version": f.version,
            "size": f.size,
            "md5": f.md5,
            "sha256": f.sha256,
            "labels": f.label_names,
            "upload_time": f.uploaded_at.isoformat(),
            "download_url": self.request.build_absolute_uri(
                f"/{f.channel.name}/{f.subdir}/{f.filename}"
            ),
        }

    def one_file(self, channel, name, version, subdir, filename):
        found = self.files(
            channel, name=name, version=version, subdir=subdir, filename=filename
        ).first()
        if found is None:
            raise NotFound(f"No file {subdir}/{filename} of {name} {version} in '{channel.name}'.")
        return found


def _message(data):
    if "detail" in data:
        return str(data["detail"])
    return "; ".join(
        f"{field}: {' '.join(map(str, errors)) if isinstance(errors, list) else errors}"
        for field, errors in data.items()
    )


class Site(AnacondaView):
    """``HEAD /``, ``GET /``: anaconda-client's check that the site answers."""

    def get(self, request):
        return Response({"api": "anaconda.org uploads", "wharf": True})


class CurrentUser(AnacondaView):
    """``GET /user``: the token's user. anaconda-client uploads to this login unless
    ``-u <channel>`` names the channel, so it only works where a channel has that name."""

    def get(self, request):
        user = caller_of(request).user
        if not user.is_authenticated:
            raise NotAuthenticated("Send a token: anaconda -t <token> (or anaconda login).")
        return Response({"login": user.username, "name": user.get_full_name(), "user_type": "user"})


class Owner(AnacondaView):
    """``GET /user/<login>``: the channel of that name (anaconda-client's ``-u``)."""

    def get(self, request, login):
        channel = self.channel(login)
        return Response(
            {
                "login": channel.name,
                "name": channel.name,
                "user_type": "org",
                "description": channel.description,
            }
        )


class Package(AnacondaView):
    """``GET, POST, PATCH /package/<owner>/<name>``: the channel's files of that name."""

    def get(self, request, owner, name):
        return self.answer(self.channel(owner), name)

    def post(self, request, owner, name):
        # Nothing to create: the package exists once a file of it is committed.
        return self.answer(self.channel(owner, Action.UPLOAD), name, must_exist=False)

    def patch(self, request, owner, name):
        return self.answer(self.channel(owner, Action.UPLOAD), name)

    def answer(self, channel, name, must_exist=True):
        files = list(self.files(channel, name=name))
        if must_exist and not files:
            raise NotFound(f"No package '{name}' in channel '{channel.name}'.")
        versions = sorted({f.version for f in files})
        return Response(
            {
                "name": name,
                "owner": {"login": channel.name},
                "full_name": f"{channel.name}/{name}",
                "package_types": ["conda"],
                "public": not channel.private,
                "versions": versions,
                "files": [self.dist(f) for f in files],
                "url": request_url(self.request, channel.name, name),
            }
        )


class Release(AnacondaView):
    """``GET, POST, PATCH /release/<owner>/<name>/<version>``: the files of one version."""

    def get(self, request, owner, name, version):
        return self.answer(self.channel(owner), name, version)

    def post(self, request, owner, name, version):
        return self.answer(self.channel(owner, Action.UPLOAD), name, version, must_exist=False)

    def patch(self, request, owner, name, version):
        return self.answer(self.channel(owner, Action.UPLOAD), name, version)

    def answer(self, channel, name, version, must_exist=True):
        files = list(self.files(channel, name=name, version=version))
        if must_exist and not files:
            raise NotFound(f"No release {name} {version} in channel '{channel.name}'.")
        return Response(
            {
                "version": version,
                "package": name,
                "owner": {"login": channel.name},
                "full_name": f"{channel.name}/{name}/{version}",
                "distributions": [self.dist(f) for f in files],
            }
        )


class Stage(AnacondaView):
    """``POST /stage/<owner>/<name>/<version>/<subdir>/<filename>``: announce an upload;
    answers where to post its bytes (``post_url``, ``form_data``) and its ``dist_id``."""

    def post(self, request, owner, name, version, subdir, filename):
        channel = self.channel(owner, Action.UPLOAD)
        ticket = anaconda.stage(channel, request.user, name, version, subdir, filename,
                                request.data)  # fmt: skip
        dist_id = ticket.dumps()
        return Response(
            {
                "post_url": request.build_absolute_uri(reverse("anaconda:upload")),
                "form_data": {"dist_id": dist_id},
                "dist_id": dist_id,
            }
        )


class StagedBytes(AnacondaView):
    """``POST /upload``: a staged file's bytes, multipart as to an S3 presigned POST (the
    ``form_data`` fields, ``Content-Length``, ``Content-MD5``, then ``file``); 201."""

    authentication_classes = []  # the signed dist_id is the permission
    parser_classes = [BodyReadByView]

    def post(self, request):
        ticket = anaconda.receive(request._request)
        return Response({"filename": ticket.filename}, status=status.HTTP_201_CREATED)

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if "json" in self.request.META.get("HTTP_ACCEPT", ""):
            return response
        code = S3_CODES.get(response.status_code, "InvalidRequest")
        if response.status_code == 400 and {"sha256", "Content-MD5"} & set(response.data):
            code = "BadDigest"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
            f"{code}</Code><Message>{escape(response.data['error'])}</Message></Error>"
        )
        return HttpResponse(body, status=response.status_code, content_type="application/xml")


S3_CODES = {403: "AccessDenied", 404: "NoSuchUpload", 409: "OperationAborted",
            411: "MissingContentLength", 413: "EntityTooLarge", 415: "InvalidRequest"}  # fmt: skip


class Commit(AnacondaView):
    """``POST /commit/<owner>/<name>/<version>/<subdir>/<filename>`` with ``{"dist_id"}``:
    publish the staged file (the one intake's checks, quota, re-upload rule and audit)."""

    def post(self, request, owner, name, version, subdir, filename):
        channel = self.channel(owner, Action.UPLOAD)
        accepted = anaconda.commit(channel, request.user, subdir, filename, request.data,
                                   request=request)  # fmt: skip
        data = self.dist(accepted.package_file)
        data["already_there"] = accepted.already_there
        data["url"] = request_url(request, channel.name, accepted.package_file.name)
        return Response(data)


class Distribution(AnacondaView):
    """``GET, DELETE /dist/<owner>/<name>/<version>/<subdir>/<filename>``: one file; the
    delete is Wharf's (maintainers and owners), as ``--force`` uses it before uploading."""

    def get(self, request, owner, name, version, subdir, filename):
        channel = self.channel(owner)
        return Response(self.dist(self.one_file(channel, name, version, subdir, filename)))

    def delete(self, request, owner, name, version, subdir, filename):
        channel = self.channel(owner, Action.DELETE_PACKAGE)
        package_file = self.one_file(channel, name, version, subdir, filename)
        data = self.dist(package_file)
        deleting.delete_package_file(package_file, request=request)
        return Response(data)


def request_url(request, channel_name, name):
    """The package's web page."""
    page = reverse("package", kwargs={"channel": channel_name, "package_name": name})
    return request.build_absolute_uri(page)
