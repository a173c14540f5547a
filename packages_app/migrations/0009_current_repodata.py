"""Indexes published before current_repodata.json existed are built again.

Raising an index's requested revision is how every change asks for a rebuild; the
reconciler, which every web and Celery worker runs when it starts, sends the rebuild.
"""

from django.db import migrations
from django.db.models import F

CURRENT_REPODATA = "current_repodata.json"


def rebuild_indexes_without_current_repodata(apps, schema_editor):
    SubdirIndex = apps.get_model("packages_app", "SubdirIndex")
    published = SubdirIndex.objects.filter(built_revision__gte=0)
    stale = [
        pk
        for pk, files in published.values_list("pk", "published_files").iterator()
        if files and CURRENT_REPODATA not in files
    ]
    for start in range(0, len(stale), 1000):
        SubdirIndex.objects.filter(pk__in=stale[start : start + 1000]).update(
            requested_revision=F("requested_revision") + 1
        )


class Migration(migrations.Migration):
    dependencies = [("packages_app", "0008_leases")]

    operations = [
        migrations.RunPython(rebuild_indexes_without_current_repodata, migrations.RunPython.noop)
    ]
