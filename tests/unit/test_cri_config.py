"""podwire-cri's TOML config: defaults, overrides, rejected keys and types."""
from __future__ import annotations

import pytest

from cri import config


def test_no_file_gives_defaults(tmp_path):
    cfg = config.load(str(tmp_path / "missing.toml"))
    assert cfg == config.Config()
    assert cfg.socket_path == "/run/podwire/cri.sock"
    assert cfg.state_dir == "/var/lib/podwire"
    assert cfg.cni_bin_dirs == ["/opt/cni/bin", "/usr/lib/cni"]
    assert cfg.default_stop_signal == "SIGTERM"


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(str(tmp_path / "missing.toml"), required=True)


def test_overrides_and_unix_url(tmp_path):
    path = tmp_path / "cri.toml"
    path.write_text('listen = "unix:///tmp/x.sock"\nrestrict_oom_score_adj = true\n'
                    'cni_bin_dirs = ["/a"]\ncni_timeout = 5\nsocket_mode = 0o600\n')
    cfg = config.load(str(path))
    assert cfg.socket_path == "/tmp/x.sock"
    assert cfg.restrict_oom_score_adj is True
    assert cfg.cni_bin_dirs == ["/a"]
    assert cfg.cni_timeout == 5.0 and isinstance(cfg.cni_timeout, float)
    assert cfg.socket_mode == 0o600


@pytest.mark.parametrize("text, message", [
    ('stat_dir = "/x"\n', "unknown keys stat_dir"),
    ('restrict_oom_score_adj = "yes"\n', "must be of type bool"),
    ('cni_bin_dirs = "/opt/cni/bin"\n', "must be of type list"),
    ('listen = "relative.sock"\n', "absolute unix socket"),
    ('default_stop_signal = "SIGNOPE"\n', "is not a signal"),
    ('listen = \n', "Invalid"),
])
def test_bad_files_are_rejected(tmp_path, text, message):
    path = tmp_path / "cri.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=message):
        config.load(str(path))


def test_to_toml_round_trips():
    import tomllib
    cfg = config.Config(cni_network="x", restrict_oom_score_adj=True)
    assert config.from_dict(tomllib.loads(config.to_toml(cfg))) == cfg


def test_packaged_default_config_is_the_defaults():
    import os
    import tomllib
    path = os.path.join(os.path.dirname(__file__), "../../packaging/cri/cri.toml")
    with open(path, "rb") as f:
        assert config.from_dict(tomllib.load(f)) == config.Config()
