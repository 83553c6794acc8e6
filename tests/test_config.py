"""Tests for foxden.config: defaults, path resolution and strict validation."""
import pickle
from pathlib import Path

import pytest

from foxden.config import (
    Config,
    ConfigError,
    config_from_overrides,
    default_config,
    load_config,
    parse_config,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "foxden.toml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, overrides: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        config_from_overrides(overrides, base_dir=tmp_path)
    return info.value


def test_documented_default_file_matches_defaults():
    loaded = load_config(REPO_ROOT / "config.toml")
    assert loaded.source == REPO_ROOT / "config.toml"
    assert loaded.replace(source=None) == default_config(base_dir=REPO_ROOT)


def test_default_values(tmp_path):
    cfg = default_config(base_dir=tmp_path)
    assert cfg.daemon.state_dir == tmp_path.resolve() / ".foxden"
    assert cfg.daemon.socket == cfg.daemon.state_dir / "foxden.sock"
    assert cfg.daemon.token is None
    assert cfg.pool.executable_path is None
    assert cfg.pool.args == ()
    assert cfg.pool.driver == "auto"
    assert cfg.source is None


def test_relative_paths_resolve_against_config_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    path = write(conf_dir, '[daemon]\nstate_dir = "../state"\nsocket = "s.sock"\n'
                           '[pool]\nexecutable_path = "bin/firefox"\n')
    cfg = load_config(path)
    assert cfg.daemon.state_dir == tmp_path.resolve() / "state"
    assert cfg.daemon.socket == conf_dir.resolve() / "s.sock"
    assert cfg.pool.executable_path == str(conf_dir.resolve() / "bin" / "firefox")


def test_values_are_converted(tmp_path):
    cfg = config_from_overrides(
        {"daemon": {"token": "s3cret"}, "pool": {"args": ["--a", "--b"]}, "jobs": {"timeout_s": 7}},
        base_dir=tmp_path,
    )
    assert cfg.daemon.token == "s3cret"
    assert cfg.pool.args == ("--a", "--b")
    assert cfg.jobs.timeout_s == 7.0 and isinstance(cfg.jobs.timeout_s, float)


def test_replace_accepts_sections_or_field_dicts(tmp_path):
    cfg = default_config(base_dir=tmp_path)
    smaller = cfg.replace(pool={"size": 1})
    assert smaller.pool.size == 1 and smaller.pool.engine == cfg.pool.engine
    assert cfg.replace(jobs=smaller.jobs).jobs == cfg.jobs
    assert isinstance(smaller, Config)


def test_error_message_names_file_and_key(tmp_path):
    path = write(tmp_path, "[jobs]\ntimeout_s = -1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert str(err) == f"{path}: [jobs] timeout_s: must be a number > 0, got -1"
    assert err.key == "jobs.timeout_s"
    assert err.path == path


def test_error_survives_pickling():
    err = ConfigError("[jobs] timeout_s: bad", "jobs.timeout_s", Path("c.toml"))
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.key, copy.path) == (str(err), err.key, err.path)


def test_unknown_section_suggests(tmp_path):
    err = error_for(tmp_path, {"jobz": {}})
    assert err.key == "jobz"
    assert "unknown section [jobz]" in str(err) and "did you mean [jobs]?" in str(err)


def test_section_must_be_table(tmp_path):
    err = error_for(tmp_path, {"pool": 3})
    assert err.key == "pool" and "must be a table" in str(err)


def test_unknown_key_suggests(tmp_path):
    err = error_for(tmp_path, {"jobs": {"timout_s": 5}})
    assert err.key == "jobs.timout_s"
    assert "[jobs] timout_s: unknown key (did you mean timeout_s?)" in str(err)


def test_unknown_key_without_close_match(tmp_path):
    err = error_for(tmp_path, {"pool": {"zzz": 1}})
    assert "[pool] zzz: unknown key" in str(err) and "did you mean" not in str(err)


@pytest.mark.parametrize(
    ("overrides", "key", "shown"),
    [
        ({"pool": {"size": "2"}}, "pool.size", 'got "2"'),
        ({"pool": {"size": True}}, "pool.size", "got true"),
        ({"pool": {"size": 2.0}}, "pool.size", "got 2.0"),
        ({"pool": {"headless": 1}}, "pool.headless", "got 1"),
        ({"pool": {"args": "--x"}}, "pool.args", 'got "--x"'),
        ({"pool": {"args": ["--x", 1]}}, "pool.args", 'got ["--x", 1]'),
        ({"jobs": {"timeout_s": "30"}}, "jobs.timeout_s", 'got "30"'),
        ({"jobs": {"timeout_s": False}}, "jobs.timeout_s", "got false"),
        ({"daemon": {"token": 123}}, "daemon.token", "got 123"),
        ({"daemon": {"state_dir": ["x"]}}, "daemon.state_dir", 'got ["x"]'),
        ({"daemon": {"log_level": {"a": 1}}}, "daemon.log_level", "got a table"),
    ],
)
def test_wrong_types(tmp_path, overrides, key, shown):
    err = error_for(tmp_path, overrides)
    section, name = key.split(".")
    assert err.key == key
    assert f"[{section}] {name}: must be" in str(err) and shown in str(err)


@pytest.mark.parametrize(
    ("overrides", "key", "expected"),
    [
        ({"daemon": {"admin_port": 65536}}, "daemon.admin_port", "must be an integer in 0..65535, got 65536"),
        ({"daemon": {"tcp_port": -1}}, "daemon.tcp_port", "got -1"),
        ({"daemon": {"grace_s": -0.5}}, "daemon.grace_s", "must be a number >= 0, got -0.5"),
        ({"daemon": {"state_dir": ""}}, "daemon.state_dir", "must not be empty"),
        ({"pool": {"size": 0}}, "pool.size", "must be an integer in 1..512, got 0"),
        ({"pool": {"size": 513}}, "pool.size", "got 513"),
        ({"pool": {"launch_timeout_s": 0}}, "pool.launch_timeout_s", "must be a number > 0, got 0"),
        ({"jobs": {"max_queue": 0}}, "jobs.max_queue", "must be an integer >= 1, got 0"),
        ({"jobs": {"retries": 11}}, "jobs.retries", "must be an integer in 0..10, got 11"),
        ({"jobs": {"queue_timeout_s": float("inf")}}, "jobs.queue_timeout_s", "got inf"),
        ({"jobs": {"jitter_s": float("nan")}}, "jobs.jitter_s", "got nan"),
        ({"watchdog": {"interval_s": 61}}, "watchdog.interval_s", "must be a number > 0 and <= 60, got 61"),
        ({"watchdog": {"kill_grace_s": -1}}, "watchdog.kill_grace_s", "got -1"),
        ({"restart": {"intensity": -1}}, "restart.intensity", "must be an integer >= 0, got -1"),
        ({"restart": {"period_s": 0}}, "restart.period_s", "got 0"),
        ({"metrics": {"port": 70000}}, "metrics.port", "got 70000"),
    ],
)
def test_out_of_range(tmp_path, overrides, key, expected):
    err = error_for(tmp_path, overrides)
    assert err.key == key
    assert expected in str(err)


@pytest.mark.parametrize("heartbeat", [1.0, 0.5])
def test_heartbeat_must_exceed_interval(tmp_path, heartbeat):
    err = error_for(tmp_path, {"watchdog": {"interval_s": 1, "heartbeat_timeout_s": heartbeat}})
    assert err.key == "watchdog.heartbeat_timeout_s"
    assert "heartbeat_timeout_s" in str(err) and "interval_s" in str(err)


def test_backoff_max_below_base(tmp_path):
    err = error_for(tmp_path, {"restart": {"backoff_base_s": 2, "backoff_max_s": 1}})
    assert err.key == "restart.backoff_max_s" and "backoff_base_s" in str(err)


def test_bad_enum_value_suggests(tmp_path):
    err = error_for(tmp_path, {"pool": {"engine": "chrome"}})
    assert err.key == "pool.engine"
    assert 'got "chrome"' in str(err) and 'did you mean "chromium"?' in str(err)
    assert '"camoufox"' in str(err)


def test_unknown_driver_is_refused(tmp_path):
    err = error_for(tmp_path, {"pool": {"driver": "puppeteer"}})
    assert err.key == "pool.driver" and '"cdp"' in str(err) and '"playwright"' in str(err)


def test_socket_path_too_long(tmp_path):
    deep = "d" * 120
    err = error_for(tmp_path, {"daemon": {"state_dir": deep}})
    assert err.key == "daemon.socket"
    assert "[daemon] socket:" in str(err) and "107" in str(err) and "state_dir" in str(err)


def test_explicit_short_socket_rescues_deep_state_dir(tmp_path):
    cfg = config_from_overrides({"daemon": {"state_dir": "d" * 120, "socket": "s.sock"}}, base_dir=tmp_path)
    assert cfg.daemon.socket == tmp_path.resolve() / "s.sock"


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "[pool]\nsize = 2\nheadless = \n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == path and info.value.key is None
    assert str(info.value).startswith(f"{path}: invalid TOML")
    assert "line 3" in str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: no such file"


def test_parse_config_names_source(tmp_path):
    with pytest.raises(ConfigError) as info:
        parse_config({"metrics": {"port": "x"}}, base_dir=tmp_path, source=Path("x.toml"))
    assert str(info.value).startswith("x.toml: [metrics] port:")


def test_a_loopback_tcp_port_without_a_token_is_refused_naming_both_keys(tmp_path):
    # 127.0.0.1 is every local user's: without a token, any of them could submit jobs there.
    err = error_for(tmp_path, {"daemon": {"tcp_port": 4100}})
    assert err.key == "daemon.tcp_port" and "[daemon] token" in str(err)
    cfg = config_from_overrides({"daemon": {"tcp_port": 4100, "token": "s3cret"}}, base_dir=tmp_path)
    assert cfg.daemon.tcp_port == 4100 and cfg.daemon.token == "s3cret"
