import pytest

from tmx_telemetry import configure_tracing


def test_no_endpoint_no_tracing():
    assert configure_tracing("tensormux-gateway", "") is None


def test_an_endpoint_that_is_not_an_http_url_is_refused():
    with pytest.raises(ValueError, match="not an http"):
        configure_tracing("tensormux-gateway", "collector:4318")


def test_the_service_is_named_unless_the_environment_names_it(monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    tracing = configure_tracing("tensormux-gateway", "http://127.0.0.1:4318/v1/traces", instance="gw-3")
    attrs = tracing.provider.resource.attributes
    assert (attrs["service.name"], attrs["service.namespace"], attrs["service.instance.id"]) == (
        "tensormux-gateway", "tensormux", "gw-3")
    assert attrs["deployment.environment"] == "prod"
    tracing.shutdown()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-eu")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-7")
    tracing = configure_tracing("tensormux-gateway", "http://127.0.0.1:4318/v1/traces", instance="gw-3")
    attrs = tracing.provider.resource.attributes
    assert (attrs["service.name"], attrs["service.instance.id"]) == ("edge-eu", "pod-7")
    tracing.shutdown()
