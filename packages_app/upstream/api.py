"""``/api/v1/channels/<name>/mirror-runs/``: a mirror channel's runs, and starting one."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.authentication import caller_of
from channels_app.access import Action, authorize
from channels_app.models import Kind
from packages_app.models import MirrorRun

from . import mirror


class MirrorRunSerializer(serializers.ModelSerializer):
    started_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = MirrorRun
        fields = [
            "id", "state", "trigger", "started_by", "started_at", "finished_at", "subdirs",
            "unchanged", "selected", "to_copy", "added", "added_bytes", "removed", "failed",
            "failures", "error",
        ]  # fmt: skip
        read_only_fields = fields


def _mirror(request, channel_name, action):
    channel = authorize(caller_of(request), channel_name, action)
    if channel.kind != Kind.MIRROR:
        raise NotFound(f"Channel '{channel.name}' is a {channel.kind} channel, not a mirror.")
    return channel


class MirrorRuns(generics.ListAPIView):
    """A mirror channel's runs, newest first (readers of the channel); ``POST`` starts a
    run now (owners), answered 202 before it ends — the list shows it."""

    serializer_class = MirrorRunSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator's dry run
            return MirrorRun.objects.none()
        channel = _mirror(self.request, self.kwargs["channel_name"], Action.READ)
        return MirrorRun.objects.filter(channel=channel).select_related("started_by")

    @extend_schema(request=None, responses={202: None})
    def post(self, request, channel_name):
        channel = _mirror(request, channel_name, Action.MANAGE)
        mirror.start(channel, request.user)
        return Response(
            {"channel": channel.name, "detail": "A mirror run was started."},
            status=status.HTTP_202_ACCEPTED,
        )


class MirrorRunDetail(generics.RetrieveAPIView):
    """One run of a mirror channel, with the files it could not copy."""

    serializer_class = MirrorRunSerializer

    def get_object(self):
        channel = _mirror(self.request, self.kwargs["channel_name"], Action.READ)
        run = MirrorRun.objects.filter(channel=channel, pk=self.kwargs["run_id"]).first()
        if run is None:
            raise NotFound(f"No run {self.kwargs['run_id']} of channel '{channel.name}'.")
        return run
