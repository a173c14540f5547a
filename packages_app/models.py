import orjson
from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.fields import bounded_text
from channels_app.models import Channel


class PackageFile(models.Model):
    """One uploaded archive in one channel subdir, with its repodata record."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        INDEXED = "indexed", "Indexed"
        FAILED = "failed", "Failed"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="package_files")
    subdir = models.CharField(max_length=32)
    filename = models.CharField(max_length=255)
    name = models.CharField(max_length=255, db_index=True)
    version = models.CharField(max_length=100)
    build = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    md5 = models.CharField(max_length=32)
    # The record as published in repodata.json (info/index.json plus size and digests),
    # kept serialized so that an index rebuild only joins bytes.
    record_json = models.TextField()
    summary = models.TextField(blank=True)
    description = models.TextField(blank=True)
    license = models.CharField(max_length=255, blank=True)
    home = models.URLField(max_length=500, blank=True)
    dev_url = models.URLField(max_length=500, blank=True)
    doc_url = models.URLField(max_length=500, blank=True)
    run_exports = models.JSONField(null=True, blank=True)
    storage_path = models.CharField(max_length=500)
    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    failure_reason = models.TextField(blank=True)
    indexed_at = models.DateTimeField(null=True, blank=True)
    # A yanked file stays downloadable by its URL but is listed in repodata's "removed"
    # instead of its packages, so solvers no longer choose it.
    yanked_at = models.DateTimeField(null=True, blank=True)
    # The one place of the limit: packages_app/files/yanking.py reads it from here.
    yank_reason = bounded_text(500, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "subdir", "filename"], name="one_file_per_channel_subdir"
            ),
            models.CheckConstraint(condition=models.Q(size__gte=0), name="size_not_negative"),
        ]
        indexes = [models.Index(fields=["channel", "name"])]
        ordering = ["channel", "subdir", "filename"]

    def __str__(self):
        return f"{self.channel.name}/{self.subdir}/{self.filename}"

    @property
    def label_names(self):
        """The file's labels, sorted (use ``prefetch_related("labels")`` for many files)."""
        return sorted(label.label for label in self.labels.all())

    @property
    def record(self):
        return orjson.loads(self.record_json)

    @property
    def yanked(self):
        return self.yanked_at is not None


# Every file carries this label unless told otherwise; /<channel>/<subdir>/ serves it.
MAIN_LABEL = "main"


class FileLabel(models.Model):
    """A label a package file carries: ``/<channel>/label/<label>/`` serves the files that
    carry it, the channel's own URL those that carry ``main``. A file carries at least one."""

    file = models.ForeignKey(PackageFile, on_delete=models.CASCADE, related_name="labels")
    label = models.CharField(max_length=100)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["file", "label"], name="one_row_per_file_label")
        ]

    def __str__(self):
        return f"{self.file_id}: {self.label}"


class SubdirIndex(models.Model):
    """What is published for one (channel, label, subdir) and what still has to be.

    Every change to the subdir's files raises ``requested_revision`` in the same
    transaction; a rebuild publishes everything committed up to a revision and then sets
    ``built_revision``. ``lease_until`` makes rebuilds of one subdir exclusive across
    workers; the holder's lease keeper renews it every few seconds, so a lease left by
    a killed worker lapses within ``WHARF_LEASE_SECONDS``.
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="subdir_indexes")
    label = models.CharField(max_length=100, default=MAIN_LABEL)
    subdir = models.CharField(max_length=32)
    requested_revision = models.BigIntegerField(default=0)
    built_revision = models.BigIntegerField(default=-1)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=36, blank=True)
    # Storage folder of the published index files, and of the ones published before.
    published_path = models.CharField(max_length=500, blank=True)
    previous_path = models.CharField(max_length=500, blank=True)
    # {file name: {"path": ..., "etag": ..., "size": ...}} for each published index file.
    # repodata.json.bz2 may point into an older folder: it is compressed after the rest.
    published_files = models.JSONField(default=dict, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    # When the scheduled compression of repodata.json.bz2 runs; empty when none is.
    bz2_due_at = models.DateTimeField(null=True, blank=True)
    # When a rebuild is sent to look again, because one found the lease held by a process
    # that may have died; empty when none is (packages_app/index/rebuilds.py).
    recheck_at = models.DateTimeField(null=True, blank=True)
    rebuild_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "label", "subdir"], name="one_index_per_label_subdir"
            )
        ]

    def __str__(self):
        if self.label == MAIN_LABEL:
            return f"{self.channel.name}/{self.subdir}"
        return f"{self.channel.name}/label/{self.label}/{self.subdir}"

    @property
    def is_current(self):
        return self.built_revision >= self.requested_revision


class SubdirPackage(models.Model):
    """One package name in one (channel, subdir): when it last changed, and its shard.

    Every change to a package file raises ``changed_revision`` of its name in the same
    transaction, so a rebuild knows which names — and so which shards and which cached
    records — it must refresh, without reading the others.
    """

    index = models.ForeignKey(SubdirIndex, on_delete=models.CASCADE, related_name="packages")
    name = models.CharField(max_length=255)
    changed_revision = models.BigIntegerField()
    # Hex sha256 of the published shard; empty until the name's shard is written.
    shard_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["index", "name"], name="one_row_per_subdir_package")
        ]
        indexes = [models.Index(fields=["index", "changed_revision"])]

    def __str__(self):
        return f"{self.index}/{self.name}"


class Package(models.Model):
    """One package name in one channel, as listed and searched: the catalog.

    Derived from the channel's PackageFile rows by ``catalog.refresh`` in the same
    transaction as every change to them, so it is never behind.
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="packages")
    name = models.CharField(max_length=255)
    # Highest version by conda's version order, and the summary of that version.
    latest_version = models.CharField(max_length=100)
    summary = models.TextField(blank=True)
    platforms = models.JSONField(default=list)  # sorted subdirs with at least one file
    file_count = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField()  # the newest upload among the files

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "name"], name="one_package_per_channel_name")
        ]
        ordering = ["channel", "name"]

    def __str__(self):
        return f"{self.channel.name}/{self.name}"


class StagedFile(models.Model):
    """A stored object that no committed file row refers to (packages_app/staging.py).

    Either bytes being written whose row is not committed yet (an upload, an import
    batch), held under a lease by their writer (``holder``, ``held_until``), or the object
    of a deleted or replaced file, to be deleted (no holder). A record whose lease lapsed
    names an object its writer, killed, left behind: a sweep deletes it, so no stored
    file is left that nothing refers to.
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
    storage_path = models.CharField(max_length=500, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    holder = models.CharField(max_length=64, blank=True, db_index=True)
    held_until = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self):
        return self.storage_path


class DailyDownloads(models.Model):
    """Downloads of one package file on one day (UTC).

    Keyed by the file's name rather than its row: deleting a file keeps its history, so a
    channel's totals never shrink; deleting the channel deletes them. Name and version are
    kept too, so that totals per package, version and platform need no join.
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
    subdir = models.CharField(max_length=32)
    filename = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    version = models.CharField(max_length=100)
    day = models.DateField()
    downloads = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "subdir", "filename", "day"], name="one_count_per_file_day"
            )
        ]
        indexes = [
            models.Index(fields=["channel", "day"]),
            models.Index(fields=["channel", "name", "day"]),
        ]

    def __str__(self):
        return f"{self.channel_id}/{self.subdir}/{self.filename} {self.day}: {self.downloads}"


class DownloadBatch(models.Model):
    """The Redis key of a batch of counts already added, so that it is never added twice."""

    key = models.CharField(max_length=200, unique=True)
    applied_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self):
        return self.key


class UpstreamSubdir(models.Model):
    """A proxy channel's copy of one upstream subdir index (packages_app/upstream/).

    The files served are those of ``index`` (published as a hosted channel's are); this
    row says when the upstream was last asked, what it answered, and whether a refresh is
    on its way.
    """

    index = models.OneToOneField(SubdirIndex, on_delete=models.CASCADE, related_name="upstream")
    checked_at = models.DateTimeField(null=True, blank=True)  # last answer (200, 304, 404)
    etag = models.CharField(max_length=500, blank=True)  # the upstream's validators
    last_modified = models.CharField(max_length=100, blank=True)
    # Where the upstream's package files are (its repodata's info.base_url, CEP-15), or
    # empty: beside its repodata.json.
    base_url = models.CharField(max_length=500, blank=True)
    # A refresh was sent then and has not finished; another is sent only once it is late.
    refresh_sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    error_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"upstream of {self.index}"


class UpstreamFetch(models.Model):
    """A package file of a proxy channel being fetched from the upstream: one process
    fetches it while the others wait, under a lease its keeper renews."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
    subdir = models.CharField(max_length=32)
    filename = models.CharField(max_length=255)
    holder = models.CharField(max_length=64)
    held_until = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "subdir", "filename"], name="one_fetch_per_file"
            )
        ]


class CombinedIndex(models.Model):
    """Index files built for one subdir of a combined channel from one state of its
    members (packages_app/combined/): ``key`` digests the subdir, the ordered members a
    caller may read and each one's published repodata, so every process reuses what one
    built. A build holds the row's lease (``lease_owner``, ``lease_until``); ``files``
    stays empty until the build is complete.
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
    subdir = models.CharField(max_length=32)
    key = models.CharField(max_length=64)
    folder = models.CharField(max_length=500, blank=True)
    # As SubdirIndex.published_files: {file name: {"path", "etag", "size"}}.
    files = models.JSONField(default=dict, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)
    # When a request last used it (written at most once a minute): old entries are
    # collected by it (packages_app/combined/cache.py).
    used_at = models.DateTimeField(default=timezone.now)
    lease_owner = models.CharField(max_length=36, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "subdir", "key"], name="one_combined_index_per_key"
            )
        ]

    def __str__(self):
        return f"{self.channel_id}/{self.subdir} {self.key[:12]}"


class MirrorRun(models.Model):
    """One run of a mirror channel's copy of its upstream (packages_app/upstream/mirror.py):
    what it found, copied, removed and could not copy. A run whose process died is marked
    ``interrupted`` by the next run or the reconciler; the next run goes on from what it
    had copied."""

    class State(models.TextChoices):
        RUNNING = "running", "running"
        FINISHED = "finished", "finished"
        FAILED = "failed", "failed"  # finished, but a subdir or some files could not be copied
        INTERRUPTED = "interrupted", "interrupted"  # its process died

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "schedule"
        COMMAND = "command", "command"
        API = "api", "api"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="mirror_runs")
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.RUNNING)
    subdirs = models.JSONField(default=list, blank=True)  # those read from the upstream
    # Those whose upstream index had not changed since the last complete copy (not read).
    unchanged = models.JSONField(default=list, blank=True)
    selected = models.PositiveIntegerField(default=0)  # upstream records the filters keep
    to_copy = models.PositiveIntegerField(default=0)  # of those, not here yet
    added = models.PositiveIntegerField(default=0)
    added_bytes = models.PositiveBigIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # {file or subdir: why it could not be copied}, the first MAX_FAILURES of them.
    failures = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # {subdir: {"etag", "last_modified", "filters"}} of each subdir this run copied whole:
    # the next run asks the upstream conditionally with them.
    validators = models.JSONField(default=dict, blank=True)

    MAX_FAILURES = 100

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["channel", "-started_at"], name="mirror_runs_by_channel")]

    def __str__(self):
        return f"{self.channel_id} mirror run {self.pk} ({self.state})"
