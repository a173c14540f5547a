"""The package catalog (one row per channel and package name) and its search indexes.

PostgreSQL: pg_trgm and GIN trigram indexes on UPPER(name) and UPPER(summary), the very
expressions Django's ``icontains`` compares (``UPPER(col::text) LIKE UPPER(%s)``).
SQLite (3.34+): an FTS5 trigram table over (name, summary) with external content, kept
current by triggers. NOTE: if a later migration makes Django rebuild the SQLite table
(most AlterField operations do), the triggers go with the old table: recreate them
there (``create_sqlite_search`` below); tests/discovery/test_search.py checks that they work.
"""

import django.db.models.deletion
from django.db import migrations, models

PG_INDEXES = {
    "packages_app_package_name_trgm": "UPPER(name) gin_trgm_ops",
    "packages_app_package_summary_trgm": "UPPER(summary) gin_trgm_ops",
}
FTS = "packages_app_package_fts"
TABLE = "packages_app_package"


def create_sqlite_search(cursor):
    cursor.execute(
        f"CREATE VIRTUAL TABLE {FTS} USING fts5(name, summary, content='{TABLE}', "
        "content_rowid='id', tokenize='trigram')"
    )
    delete_old = (
        f"INSERT INTO {FTS}({FTS}, rowid, name, summary) "
        "VALUES ('delete', old.id, old.name, old.summary);"
    )
    insert_new = f"INSERT INTO {FTS}(rowid, name, summary) VALUES (new.id, new.name, new.summary);"
    for suffix, event, body in (
        ("ai", "INSERT", insert_new),
        ("ad", "DELETE", delete_old),
        ("au", "UPDATE", delete_old + " " + insert_new),
    ):
        cursor.execute(
            f"CREATE TRIGGER {FTS}_{suffix} AFTER {event} ON {TABLE} BEGIN {body} END"
        )
    cursor.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')")


def sqlite_has_trigram_fts(cursor):
    try:
        cursor.execute("CREATE VIRTUAL TABLE temp.wharf_probe USING fts5(x, tokenize='trigram')")
    except Exception:  # noqa: BLE001 - no FTS5, or SQLite older than 3.34
        return False
    cursor.execute("DROP TABLE temp.wharf_probe")
    return True


def create_search_indexes(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # What django.contrib.postgres's TrigramExtension does, but a no-op elsewhere
            # in both directions (the extension stays: other schemas may use it).
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            for name, expression in PG_INDEXES.items():
                cursor.execute(f"CREATE INDEX {name} ON {TABLE} USING gin ({expression})")
        elif connection.vendor == "sqlite" and sqlite_has_trigram_fts(cursor):
            create_sqlite_search(cursor)


def drop_search_indexes(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for name in PG_INDEXES:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
        elif connection.vendor == "sqlite":
            for suffix in ("ai", "ad", "au"):
                cursor.execute(f"DROP TRIGGER IF EXISTS {FTS}_{suffix}")
            cursor.execute(f"DROP TABLE IF EXISTS {FTS}")


def fill_catalog(apps, schema_editor):
    """One catalog row per (channel, name) of the package files already stored."""
    import rattler

    PackageFile = apps.get_model("packages_app", "PackageFile")
    Package = apps.get_model("packages_app", "Package")
    groups = {}
    files = PackageFile.objects.values_list(
        "pk", "channel_id", "name", "version", "subdir", "summary", "uploaded_at"
    )
    for pk, channel_id, name, version, subdir, summary, uploaded_at in files.iterator():
        groups.setdefault((channel_id, name), []).append(
            (pk, version, subdir, summary, uploaded_at)
        )
    rows = []
    for (channel_id, name), entries in groups.items():
        latest = max(entries, key=lambda e: (rattler.Version(e[1]), e[4], e[0]))
        rows.append(
            Package(
                channel_id=channel_id,
                name=name,
                latest_version=latest[1],
                summary=latest[3],
                platforms=sorted({e[2] for e in entries}),
                file_count=len(entries),
                updated_at=max(e[4] for e in entries),
            )
        )
    Package.objects.bulk_create(rows, batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ('channels_app', '0001_initial'),
        ('packages_app', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='Package',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=255)),
                ('latest_version', models.CharField(max_length=100)),
                ('summary', models.TextField(blank=True)),
                ('platforms', models.JSONField(default=list)),
                ('file_count', models.PositiveIntegerField(default=0)),
                ('updated_at', models.DateTimeField()),
                ('channel', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='packages', to='channels_app.channel')),
            ],
            options={
                'ordering': ['channel', 'name'],
                'constraints': [models.UniqueConstraint(fields=('channel', 'name'), name='one_package_per_channel_name')],
            },
        ),
        migrations.RunPython(create_search_indexes, drop_search_indexes),
        migrations.RunPython(fill_catalog, migrations.RunPython.noop),
    ]
