from pathlib import Path

import pytest

from gradtts_tf.config import Config, ConfigError, SynthesisSettings, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_equal_official_params():
    c = Config()
    m, a, t = c.model, c.audio, c.train
    assert (m.n_enc_channels, m.filter_channels, m.filter_channels_dp) == (192, 768, 256)
    assert (m.n_heads, m.n_enc_layers, m.enc_kernel, m.window_size) == (2, 6, 3, 4)
    assert (m.enc_dropout, m.dec_dim, m.beta_min, m.beta_max, m.pe_scale) == (
        0.1, 64, 0.05, 20.0, 1000,
    )
    assert (m.n_vocab, m.n_spks, m.spk_emb_dim) == (149, 1, 64)
    assert (a.n_mels, a.sample_rate, a.n_fft, a.hop_length, a.win_length) == (
        80, 22050, 1024, 256, 1024,
    )
    assert (a.f_min, a.f_max) == (0.0, 8000.0)
    assert (t.batch_size, t.learning_rate, t.out_size) == (16, 1e-4, 172)
    assert c.text.add_blank is True


def test_shipped_configs_load():
    assert load_config(ROOT / "configs" / "ljspeech.yaml") == Config()
    demo = load_config(ROOT / "configs" / "demo.yaml")
    assert demo.model.n_enc_channels < Config().model.n_enc_channels


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  n_enc_chanels: 10\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*n_enc_chanels"):
        load_config(path)
    path.write_text("modle:\n  n_spks: 2\n")
    with pytest.raises(ConfigError, match="unknown key 'modle'"):
        load_config(path)


def test_wrong_type_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  batch_size: eight\n")
    with pytest.raises(ConfigError, match="train.batch_size: expected an integer"):
        load_config(path)


def test_overrides_and_round_trip(tmp_path):
    c = load_config(ROOT / "configs" / "demo.yaml", ["train.batch_size=3", "model.n_spks=4"])
    assert c.train.batch_size == 3 and c.model.n_spks == 4
    c.save(tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == c
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["batch_size=3"])
    with pytest.raises(ConfigError, match="unknown key 'batch'"):
        load_config(None, ["train.batch=3"])


def test_inference_section_defaults_and_checks():
    config = load_config(None, ["inference.temperature=3.0", "inference.length_scale=0.9"])
    assert config.inference == SynthesisSettings(steps=10, temperature=3.0, length_scale=0.9)
    assert load_config(None).inference.temperature == 1.5  # the official default
    for bad in ("inference.steps=0", "inference.length_scale=-1.0", "inference.steps=2.5"):
        with pytest.raises(ConfigError, match=bad.split("=")[0].replace(".", r"\.")):
            load_config(None, [bad])
    # The key's earlier name still loads (configs saved by earlier versions).
    assert load_config(None, ["inference.n_timesteps=4"]).inference.steps == 4
    assert SynthesisSettings.from_dict({"n_timesteps": 3}).steps == 3


def test_synthesis_settings_override():
    voice = SynthesisSettings(steps=4, temperature=2.0, length_scale=1.1)
    assert voice.override() == voice
    assert voice.override(steps=6, length_scale=0.9) == SynthesisSettings(6, 2.0, 0.9)
    assert voice.override(temperature=3) == SynthesisSettings(4, 3.0, 1.1)
    with pytest.raises(ValueError, match="length_scale: expected a number > 0, got -1"):
        voice.override(length_scale=-1)
    with pytest.raises(ValueError, match="steps: expected an integer >= 1, got True"):
        voice.override(steps=True)
