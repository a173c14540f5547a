"""Package summaries across files: latest version, platforms, summary."""

import rattler


def summarize(rows):
    """Fold package-file rows into one summary per (channel, package name).

    ``rows`` are dicts with channel__name, name, version, subdir, summary, uploaded_at.
    The latest version decides the summary shown.
    """
    summaries = {}
    for row in rows:
        key = (row["channel__name"], row["name"])
        version = rattler.Version(row["version"])
        entry = summaries.get(key)
        if entry is None:
            entry = summaries[key] = {
                "channel": row["channel__name"],
                "name": row["name"],
                "latest_version": row["version"],
                "summary": row["summary"],
                "platforms": set(),
                "updated_at": row["uploaded_at"],
                "_version": version,
            }
        elif version > entry["_version"]:
            entry.update(latest_version=row["version"], summary=row["summary"], _version=version)
        entry["platforms"].add(row["subdir"])
        entry["updated_at"] = max(entry["updated_at"], row["uploaded_at"])
    result = []
    for entry in summaries.values():
        del entry["_version"]
        entry["platforms"] = sorted(entry["platforms"])
        result.append(entry)
    return result


SUMMARY_FIELDS = ("channel__name", "name", "version", "subdir", "summary", "uploaded_at")


def search_rank(entry, query):
    """Exact name first, then names that start with the query, then the rest."""
    name = entry["name"].lower()
    if name == query:
        return 0
    if name.startswith(query):
        return 1
    if query in name:
        return 2
    return 3
