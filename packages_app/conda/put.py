"""``PUT /<channel>/<subdir>/<filename>``: an upload to the package file's own URL, as
Artifactory takes it (``rattler-build upload artifactory``, ``curl -T``).

The body is the package, with a Content-Length or chunked. The intake receives, checks
and stores it exactly as every other upload (size limit, quota, archive checks, the
re-upload rule, audit), and checks every digest the request declares (``X-File-SHA256``,
Artifactory's ``X-Checksum-Sha256``, ``-Sha1``, ``-Md5``). The URL's subdir must be the
package's own and its file name the package's name (both checked against
``info/index.json``). ``/<channel>/label/<label>/<subdir>/<filename>`` uploads with that
label; ``?force=true`` replaces a file of the name that has other bytes (owners), as on
the other upload routes. 201 with the stored file; 200 when the same bytes were there.

Only a token authenticates a PUT (Bearer, Basic, X-API-Key or ``/t/<token>/``). The
browser session is not read: a PUT carries no CSRF token, so a page of another site must
not be able to upload with a signed-in visitor's cookie.
"""

from django.http import JsonResponse

from accounts.authentication import InvalidCredentials, identify
from accounts.errors import DomainError
from channels_app.access import Action, NotAuthenticated, authorize
from packages_app.files import labels
from packages_app.intake import archives, digests, uploads
from packages_app.serializers import accepted_upload

from .responses import error_response

WHO_MAY_PUT = (
    "An upload by PUT needs a token: send it as 'Authorization: Bearer <token>', Basic "
    "(the token as password), X-API-Key or in the URL (/t/<token>/); a browser session "
    "is not accepted for PUT."
)


def put_package(request, channel, path, token=None, label=None):
    """Answer a PUT to a conda file URL: store the body as the package file it names."""
    try:
        return _put(request, channel, path, token, label)
    except InvalidCredentials as exc:
        return error_response(401, str(exc))
    except NotAuthenticated:
        # Anonymous, for every channel alike (a missing one too): nothing is told.
        return error_response(401, WHO_MAY_PUT)
    except DomainError as exc:
        return error_response(exc.status, exc.message)


def _put(request, channel, path, token, label):
    caller = identify(request, token, use_session=False)
    force = request.GET.get("force", "").lower() in {"1", "true", "yes"}
    target = authorize(caller, channel, Action.REPLACE_PACKAGE if force else Action.UPLOAD)
    subdir, _, filename = path.partition("/")
    if subdir not in archives.SUBDIRS or not filename or "/" in filename:
        raise uploads.UploadError(
            f"Upload by PUT to /{target.name}/<subdir>/<package file name>, e.g. "
            f"/{target.name}/noarch/demo-1.0-0.conda; '{path}' is not such a path."
        )
    file_labels = labels.for_upload([label]) if label else None
    stream = uploads.body_stream(request)
    received = uploads.receive_raw(stream, filename, digests.in_request_headers(request.META))
    accepted = uploads.accept(
        target, received, caller.user, force=force, request=request, labels=file_labels,
        subdir=subdir,
    )  # fmt: skip
    data, status = accepted_upload(request, accepted)
    return JsonResponse(data, status=status)
