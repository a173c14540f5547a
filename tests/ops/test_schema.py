import pytest


@pytest.mark.django_db
def test_it_publishes_an_openapi_schema_with_every_endpoint(client):
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/v1/upload/{channel}",
        "/api/v1/channels/",
        "/api/v1/channels/{channel_name}/members/",
        "/api/v1/tokens/",
        "/api/v1/search",
        "/api/channels/{channel}/upload/{filename}",
    ):
        assert path in paths, path


@pytest.mark.django_db
def test_it_serves_browsable_api_docs_without_external_assets(client):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    assert b"/static/drf_spectacular_sidecar/" in response.content
