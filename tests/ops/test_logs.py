"""Logs: one line per request, JSON on request, Celery's lines in the same format, no
token secret in any line — Wharf's own, Django's, gunicorn's access log or a worker's —
and no line forged or garbled by control characters a client sent."""

import base64
import logging
import re
import sys

import orjson
import pytest

from accounts.models import ApiToken
from packages_app.models import SubdirIndex
from registry import logs

from ..packages import eventually, wait_for_index
from ..served import call
from ..served import upload as upload_over_http

SECRET = "wharf-" + "S3cr3t" * 6 + "abcd"


def record(message, *args):
    return logging.LogRecord("wharf.test", logging.INFO, __file__, 1, message, args, None)


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        (f"GET /t/{SECRET}/robotics/noarch/repodata.json", "GET /t/***/robotics/noarch/"),
        ("GET /t/not-even-a-token/x/noarch/repodata.json", "GET /t/***/x/noarch/"),
        (f"Authorization: Bearer {SECRET}", "Authorization: Bearer wharf-***"),
        ("Authorization: Bearer " + "x" * 40, "Authorization: Bearer ***"),
        ("Authorization: Basic " + base64.b64encode(b"u:" + SECRET.encode()).decode(), "Basic ***"),
        (f"found {SECRET} in a message", "found wharf-*** in"),
        ("postgres://wharf:hunter2-password@db:5432/wharf", "postgres://wharf:***@db:5432/wharf"),
    ],
)
def test_it_masks_credentials_in_any_line(line, masked):
    redacted = logs.redact(line)
    assert masked in redacted
    assert SECRET not in redacted and "hunter2" not in redacted and "not-even" not in redacted


def test_it_keeps_lines_without_credentials():
    line = "published robotics/linux-64 revision 3: wharf-upload-x1 is a temp file, basic rules"
    assert logs.redact(line) == line


def test_text_lines_are_time_level_logger_message_and_masked():
    line = logs.TextFormatter().format(record("GET %s 200", f"/t/{SECRET}/c/noarch/x"))
    assert line.endswith(" INFO wharf.test GET /t/***/c/noarch/x 200")
    assert SECRET not in line


def test_json_lines_carry_extra_fields_and_are_masked():
    entry = record("failed for %s", SECRET)
    entry.route, entry.status = "channel-file", 404
    document = orjson.loads(logs.JsonFormatter().format(entry))
    assert document["level"] == "INFO"
    assert document["logger"] == "wharf.test"
    assert document["message"] == "failed for wharf-***"
    assert (document["route"], document["status"]) == ("channel-file", 404)
    assert document["time"].endswith("+00:00")


# What a client may put in a path, a name or a reason: a newline followed by what looks like
# a log line of its own, a carriage return, NUL, escape, DEL, C1 NEL and a line separator.
FORGED = "x\n2026-12-05 08:00:00,000 INFO wharf.request FORGED"
CONTROLS = "\r\x00\x1b[31m\t\x7f\x85\u2028"
# Anything that is not a printable character or the newline ending a line.
RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def test_text_lines_escape_control_characters_in_the_message_and_its_arguments():
    line = logs.TextFormatter().format(record(f"GET %s 400 {CONTROLS}", FORGED + CONTROLS))

    assert "\n" not in line and not RAW_CONTROL.search(line)
    assert line.endswith(
        r" GET x\n2026-12-05 08:00:00,000 INFO wharf.request FORGED\r\x00\x1b[31m\t\x7f\x85\u2028"
        r" 400 \r\x00\x1b[31m\t\x7f\x85\u2028"
    )


def test_a_traceback_keeps_its_lines_but_shows_other_control_characters_escaped():
    try:
        raise ValueError(f"no channel {FORGED}{CONTROLS}")
    except ValueError:
        entry = record("failed for %s", FORGED)
        entry.exc_info = sys.exc_info()
    text = logs.TextFormatter().format(entry)
    first, *traceback = text.split("\n")

    assert first.endswith(r"failed for x\n2026-12-05 08:00:00,000 INFO wharf.request FORGED")
    assert traceback[0] == "Traceback (most recent call last):"
    assert traceback[-2:] == ["ValueError: no channel x", "2026-12-05 08:00:00,000 INFO "
                              r"wharf.request FORGED\r\x00\x1b[31m\t\x7f\x85\u2028"]  # fmt: skip
    assert not RAW_CONTROL.search(text)


def test_json_lines_escape_control_characters_in_the_message_and_extra_fields():
    entry = record("GET %s 400", FORGED + CONTROLS)
    entry.path = "/c/noarch/" + FORGED + CONTROLS
    entry.reason = {"given": [CONTROLS]}
    line = logs.JsonFormatter().format(entry)
    document = orjson.loads(line)

    assert "\n" not in line and not RAW_CONTROL.search(line)
    assert document["message"] == f"GET {FORGED}{CONTROLS} 400"  # escaped, not changed
    assert document["path"] == "/c/noarch/" + FORGED + CONTROLS
    assert document["reason"] == {"given": [CONTROLS]}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_path_with_control_characters_cannot_forge_or_garble_a_request_line(
    processes, tmp_path, log_format
):
    server = processes.gunicorn({"WHARF_LOG_FORMAT": log_format})
    forged = "/c/noarch/x%0a2026-12-05%2008:00:00,000%20INFO%20wharf.request%20FORGED"

    assert call("GET", server + forged)[0] == 400
    assert call("GET", server + "/c/noarch/x%00y%1b[31m")[0] == 400

    def both_logged():
        lines = (tmp_path / "gunicorn.log").read_text().splitlines()
        requests = [line for line in lines if _logger(line, log_format) == "wharf.request"]
        assert len(requests) == 2
        return lines, requests

    lines, requests = eventually(both_logged)
    assert not RAW_CONTROL.search((tmp_path / "gunicorn.log").read_text())
    if log_format == "json":
        documents = [orjson.loads(line) for line in lines]  # each line one whole object
        paths = [d["path"] for d in documents if d["logger"] == "wharf.request"]
        assert paths == ["/c/noarch/" + FORGED, "/c/noarch/x\x00y\x1b[31m"]
    else:
        stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+ ")
        assert all(stamp.match(line) for line in lines)
        assert not any(line.startswith("2026-12-05 08:00:00,000") for line in lines)
        assert (
            r"GET /c/noarch/x\n2026-12-05 08:00:00,000 INFO wharf.request FORGED 400 "
            in (requests[0])
        )
        assert r"GET /c/noarch/x\x00y\x1b[31m 400 " in requests[1]


def _logger(line, log_format):
    if log_format == "json":
        return orjson.loads(line)["logger"]
    return line.split(" ", 4)[3]


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="WHARF_LOG_FORMAT is 'yaml'; use 'text' or 'json'"):
        logs.log_format("yaml")


def json_lines(path):
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    documents = [orjson.loads(line) for line in lines]  # every line is one JSON object
    for document in documents:
        assert {"time", "level", "logger", "message"} <= document.keys(), document
    return documents


@pytest.mark.django_db(transaction=True)
def test_web_and_worker_log_json_lines_without_a_token(
    processes, private_channel, tokens, users, packages, tmp_path
):
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{processes.redis().port}/0",
        "WHARF_LOG_FORMAT": "json",
    }
    # gunicorn's access log too, with the credential headers in its format.
    access = ['"%(r)s" %(s)s %({authorization}i)s %({x-api-key}i)s %({cookie}i)s %(f)s']
    server = processes.gunicorn(env, args=["--access-logfile", "-", "--access-logformat", *access])
    processes.worker("worker", env)
    channel, token = private_channel.name, tokens["owner"]
    unknown = "wharf-" + "u" * 40
    basic = base64.b64encode(f"anyone:{token}".encode()).decode()
    repodata = f"{channel}/noarch/repodata.json"

    assert upload_over_http(server, channel, token, packages.make("logged"))[0] == 201
    wait_for_index(private_channel, "noarch")
    assert call("GET", f"{server}/t/{token}/{repodata}")[0] == 200
    assert (
        call("GET", f"{server}/{repodata}", headers={"Authorization": f"Basic {basic}"})[0] == 200
    )
    assert call("GET", f"{server}/{repodata}", headers={"X-API-Key": token})[0] == 200
    assert call("GET", f"{server}/t/{unknown}/{repodata}")[0] == 401
    assert call("GET", f"{server}/t/{token}/no-such-channel/noarch/repodata.json")[0] == 404
    referred = {"Referer": f"{server}/t/{token}/{channel}/", "Cookie": "sessionid=abcdef"}
    assert call("GET", f"{server}/{repodata}", token, headers=referred)[0] == 200

    def all_answered():  # gunicorn writes its access line after the answer
        web = json_lines(tmp_path / "gunicorn.log")
        assert sum(d["logger"] == "gunicorn.access" for d in web) == 7
        return web

    web = eventually(all_answered)
    rebuild = eventually(lambda: _with_rebuild(json_lines(tmp_path / "worker.log")))[-1]
    worker = json_lines(tmp_path / "worker.log")
    for secret in (token, unknown, basic, token[6:20], "sessionid=abcdef"):
        for line in (tmp_path / "gunicorn.log", tmp_path / "worker.log"):
            assert secret not in line.read_text()

    requests = [d for d in web if d["logger"] == "wharf.request"]
    owner, token_id = users["owner"].pk, ApiToken.objects.get(user=users["owner"]).pk
    upload_line = next(d for d in requests if d["route"] == "api:upload-prefix")
    assert upload_line["status"] == 201 and upload_line["method"] == "POST"
    assert (upload_line["user_id"], upload_line["token_id"]) == (owner, token_id)
    url_token = next(
        d for d in requests if d["path"] == f"/t/***/{repodata}" and d["status"] == 200
    )
    assert url_token["route"] == "token-channel-file"
    assert (url_token["user_id"], url_token["token_id"]) == (owner, token_id)
    assert url_token["client"] == "127.0.0.1"
    assert isinstance(url_token["duration_ms"], float)
    assert url_token["message"].startswith(f"GET /t/***/{repodata} 200 ")
    assert {d["status"] for d in requests if d["route"] == "channel-file"} == {200}
    assert sum(d["route"] == "channel-file" for d in requests) == 3
    assert {
        (d["status"], d["user_id"]) for d in requests if d["path"].startswith("/t/***/no-")
    } == {(404, owner)}
    assert any(d["status"] == 401 and d["path"] == f"/t/***/{repodata}" for d in requests)
    # gunicorn's access log: the request line and the credential headers masked.
    access_lines = [d["message"] for d in web if d["logger"] == "gunicorn.access"]
    assert f'"GET /t/***/{repodata} HTTP/1.1" 200 - - - -' in access_lines
    assert f'"GET /{repodata} HTTP/1.1" 200 *** - - -' in access_lines
    assert f'"GET /{repodata} HTTP/1.1" 200 - *** - -' in access_lines
    assert f'"GET /{repodata} HTTP/1.1" 200 *** - *** {server}/t/***/{channel}/' in access_lines
    # The worker: each rebuild with its channel, subdir, revision and duration, and the task.
    assert (rebuild["channel"], rebuild["subdir"]) == (channel, "noarch")
    assert (
        rebuild["revision"]
        == SubdirIndex.objects.get(channel=private_channel, subdir="noarch").built_revision
    )
    assert isinstance(rebuild["duration_ms"], float)
    assert rebuild["task"] == "packages_app.tasks.rebuild_subdir_index" and rebuild["task_id"]
    assert any(d["logger"] == "celery.app.trace" for d in worker)  # Celery's own lines too


def _with_rebuild(documents):
    rebuilds = [
        d for d in documents if d["logger"] == "packages_app.index.publishing" and "revision" in d
    ]
    assert rebuilds
    return rebuilds
