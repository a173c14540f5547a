from rest_framework import serializers

from packages_app.files import labels, yanking
from packages_app.intake import reuploads
from packages_app.models import Package, PackageFile


class PackageFileSerializer(serializers.ModelSerializer):
    channel = serializers.CharField(source="channel.name", read_only=True)
    uploader = serializers.CharField(source="uploader.username", default=None, read_only=True)
    url = serializers.SerializerMethodField()
    record = serializers.JSONField(read_only=True)
    yanked = serializers.BooleanField(read_only=True)
    labels = serializers.ListField(
        source="label_names", child=serializers.CharField(), read_only=True
    )

    class Meta:
        model = PackageFile
        fields = [
            "channel",
            "subdir",
            "filename",
            "name",
            "version",
            "build",
            "size",
            "sha256",
            "md5",
            "summary",
            "license",
            "home",
            "dev_url",
            "doc_url",
            "record",
            "run_exports",
            "uploader",
            "uploaded_at",
            "state",
            "failure_reason",
            "indexed_at",
            "yanked",
            "yanked_at",
            "yank_reason",
            "labels",
            "url",
        ]

    def get_url(self, package_file) -> str:
        path = f"/{package_file.channel.name}/{package_file.subdir}/{package_file.filename}"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


def accepted_upload(request, accepted):
    """(body, status) of the answer to an accepted upload (every upload route): 201 with
    the stored file; 200 with it when the same bytes were already there (nothing changed:
    see packages_app/intake/reuploads.py)."""
    data = PackageFileSerializer(accepted.package_file, context={"request": request}).data
    data["already_there"] = accepted.already_there
    if accepted.already_there:
        data["detail"] = reuploads.already_there(accepted.package_file)
        return data, 200
    return data, 201


class PackageSummarySerializer(serializers.ModelSerializer):
    """A catalog row: a package name in a channel, its latest version and platforms."""

    channel = serializers.CharField(source="channel.name", read_only=True)
    platforms = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Package
        fields = ["channel", "name", "latest_version", "summary", "platforms", "updated_at"]
        read_only_fields = fields


class YankSerializer(serializers.Serializer):
    """The body of a yank request (for the API schema; the view checks the reason)."""

    reason = serializers.CharField(max_length=yanking.REASON_MAX_LENGTH)


class LabelChangeSerializer(serializers.Serializer):
    """The body of a label change: ``add`` and/or ``remove``, or ``labels`` to set them
    all (for the API schema; :mod:`packages_app.files.labels` checks the names)."""

    add = serializers.ListField(child=serializers.CharField(), required=False)
    remove = serializers.ListField(child=serializers.CharField(), required=False)
    labels = serializers.ListField(child=serializers.CharField(), required=False)


class LabelMoveSerializer(serializers.Serializer):
    """The body of a move of a label's files (:func:`packages_app.files.labels.move`)."""

    to = serializers.CharField(
        max_length=labels.NAME_MAX_LENGTH, help_text="The label the files get, e.g. main."
    )
    # No longer than the names and versions files have: a longer one matches nothing.
    package = serializers.CharField(
        max_length=PackageFile._meta.get_field("name").max_length,
        required=False,
        help_text="Only the files of this package.",
    )
    version = serializers.CharField(
        max_length=PackageFile._meta.get_field("version").max_length,
        required=False,
        help_text="Only the files of this version.",
    )
    copy = serializers.BooleanField(
        required=False, default=False, help_text="Keep the label the files had as well."
    )


class LabelMoveResultSerializer(serializers.Serializer):
    channel = serializers.CharField()
    label = serializers.CharField()
    to = serializers.CharField()
    files = serializers.ListField(child=serializers.DictField())


class FileLabelsSerializer(serializers.Serializer):
    channel = serializers.CharField()
    subdir = serializers.CharField()
    filename = serializers.CharField()
    labels = serializers.ListField(child=serializers.CharField())


class ChannelLabelSerializer(serializers.Serializer):
    name = serializers.CharField()
    files = serializers.IntegerField()
