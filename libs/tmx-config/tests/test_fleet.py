import pytest

from tmx_config import load_fleet
from tmx_config.fleet import FleetFileError


def write(tmp_path, text):
    path = tmp_path / "tensormux.yaml"
    path.write_text(text)
    return path


def test_loads_backends_models_tenants(tmp_path):
    fleet = load_fleet(write(tmp_path, """
backends:
  - {id: a, url: "http://127.0.0.1:1/", models: [m1]}
models:
  - {name: m1, aliases: [small], context_length: 4096}
tenants:
  - {name: acme, api_keys: [k1]}
routing: {strategy: least_inflight}
"""))
    assert fleet.backends[0].url == "http://127.0.0.1:1"  # trailing slash dropped
    assert fleet.models[0].aliases == ("small",)
    assert fleet.tenants[0].api_keys == ("k1",)


@pytest.mark.parametrize("text, field", [
    ("backends: [{id: 'a.b', url: 'http://x'}]", "backend id"),
    ("backends: [{id: a, url: 'ftp://x'}]", "http://"),
    ("backends: [{id: a, url: 'http://x:99999'}]", "not a URL"),
    ("backends: [{id: a, url: 'http://x:0'}]", "port 0"),
    ("backends: [{id: a, url: 'http://:8000'}]", "name a host"),
    ("backends: [{id: a, url: 'http://x'}, {id: a, url: 'http://y'}]", "unique"),
    ("backends: [{id: a, url: 'http://x', colour: red}]", "colour"),
    ("tenants: [{name: 'a b'}]", "tenant name"),
    ("backends: [", "tensormux.yaml"),
])
def test_rejects_bad_files_naming_the_problem(tmp_path, text, field):
    with pytest.raises(FleetFileError, match=field):
        load_fleet(write(tmp_path, text))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FleetFileError, match="nope.yaml"):
        load_fleet(tmp_path / "nope.yaml")
