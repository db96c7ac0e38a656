"""Loads official PyTorch Grad-TTS checkpoints into the Keras model.

``gradtts_from_official(state_dict, params)`` returns a built `GradTTS` carrying the
official weights; ``python -m gradtts_tf.convert`` writes them as a Keras
``.weights.h5`` file plus the YAML config they belong to.
``hifigan_from_official(state_dict, config_json)`` does the same for an official
HiFi-GAN generator (``--vocoder-config config_v1.json`` on the command line).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gradtts_tf.cli.quiet import add_verbose_argument, quiet_tensorflow
from gradtts_tf.config import Config, config_from_dict, load_config
from gradtts_tf.convert.hifigan import hifigan_from_official, vocoder_config_from_official

# Official ``GradTTS(...)`` constructor arguments -> our config tree.
_MODEL_KEYS = (
    "n_vocab", "n_spks", "spk_emb_dim", "n_enc_channels", "filter_channels",
    "filter_channels_dp", "n_heads", "n_enc_layers", "enc_kernel", "enc_dropout",
    "window_size", "dec_dim", "beta_min", "beta_max", "pe_scale",
)


def load_state_dict(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Reads an official ``state_dict`` as float32 numpy arrays.

    Args:
        source: A ``.pt``/``.pth`` file (needs torch), an ``.npz`` of the same keys,
            or a mapping of arrays/tensors. A ``{"generator": ...}`` or
            ``{"state_dict": ...}`` wrapper is unwrapped.

    Returns:
        Dict key -> ``np.ndarray``.
    """
    if isinstance(source, Mapping):
        data = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        if path.suffix == ".npz":
            with np.load(path) as npz:
                data = {k: npz[k] for k in npz.files}
        else:
            try:
                import torch
            except ImportError as e:
                raise ImportError(
                    f"reading {path} needs PyTorch (pip install torch==2.13.0), "
                    "or convert it to .npz with numpy on a machine that has torch"
                ) from e
            data = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("generator", "state_dict", "model"):
        if wrapper in data and isinstance(data[wrapper], Mapping):
            data = dict(data[wrapper])
    out = {}
    for key, value in data.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        out[key] = np.asarray(value, dtype=np.float32)
    return out


def config_from_official(params: Mapping[str, Any], base: Config | None = None) -> Config:
    """Builds our `Config` from the official constructor arguments (``params.py`` names)."""
    base = base or Config()
    tree = base.to_dict()
    unknown = set(params) - set(_MODEL_KEYS) - {"n_feats"}
    if unknown:
        raise ValueError(f"unknown official GradTTS arguments: {sorted(unknown)}")
    tree["model"].update({k: v for k, v in params.items() if k in _MODEL_KEYS})
    if "n_feats" in params:
        tree["audio"]["n_mels"] = params["n_feats"]
    return config_from_dict(tree, "<official params>")


def gradtts_from_official(
    state_dict: str | os.PathLike | Mapping[str, Any],
    params: Mapping[str, Any] | Config | None = None,
):
    """Returns a built `GradTTS` holding an official checkpoint's weights.

    Args:
        state_dict: Official ``state_dict`` (see `load_state_dict` for accepted forms).
        params: The official constructor arguments (dict of ``params.py`` names), or
            our `Config`; ``None`` means the official LJSpeech defaults.

    Raises:
        ValueError: If a key is missing, has the wrong shape, or is left unused.
    """
    from gradtts_tf.convert.decoder import load_decoder_weights
    from gradtts_tf.convert.encoder import load_encoder_weights
    from gradtts_tf.model import GradTTS

    weights = load_state_dict(state_dict)
    if not isinstance(params, Config):
        params = dict(params or {})
        # Later official code feeds the speaker to the text encoder; its proj_m input
        # is then n_enc_channels + spk_emb_dim wide. Detect that layout from the weights.
        proj_m = weights.get("encoder.proj_m.weight")
        n_enc = params.get("n_enc_channels", Config().model.n_enc_channels)
        config = config_from_official(params)
        if proj_m is not None and proj_m.shape[1] == n_enc + config.model.spk_emb_dim:
            config.model.spk_cond_encoder = True
    else:
        config = params
    model = GradTTS.from_config_tree(config)
    used = load_encoder_weights(model.encoder, weights, prefix="encoder.")
    used |= load_decoder_weights(model.decoder, weights, prefix="decoder.")
    if model.n_spks > 1:
        table = weights.get("spk_emb.weight")
        if table is None or table.shape != (model.n_spks, model.spk_emb_dim):
            raise ValueError(
                "spk_emb.weight missing or of the wrong shape: expected "
                f"{(model.n_spks, model.spk_emb_dim)}, got {None if table is None else table.shape}"
            )
        model.spk_emb.embeddings.assign(table)
        used.add("spk_emb.weight")
    left = sorted(set(weights) - used)
    if left:
        raise ValueError(
            f"{len(left)} checkpoint keys were not used (model/config mismatch?): {left[:10]}"
        )
    return model


def _convert_hifigan(args: argparse.Namespace) -> None:
    """Writes ``generator.weights.h5`` (folded) + ``config.yaml`` for `load_vocoder`."""
    import dataclasses

    from gradtts_tf.vocoder import save_hifigan

    vocoder, audio = vocoder_config_from_official(args.vocoder_config)
    config = load_config(args.config) if args.config else Config()
    config = dataclasses.replace(
        config, audio=dataclasses.replace(config.audio, **audio), vocoder=vocoder
    )
    generator = hifigan_from_official(args.checkpoint, vocoder, n_mels=config.audio.n_mels)
    if generator.hop_length != config.audio.hop_length:
        raise SystemExit(
            f"prod(upsample_rates)={generator.hop_length} differs from "
            f"hop_length={config.audio.hop_length}: give the audio settings with --config"
        )
    out = save_hifigan(generator, config, args.out)
    n_params = sum(int(np.prod(v.shape)) for v in generator.weights)
    print(f"wrote {out / 'generator.weights.h5'} ({n_params:,} parameters) and "
          f"{out / 'config.yaml'}")


def main(argv: list[str] | None = None) -> None:
    """CLI: convert an official Grad-TTS (or HiFi-GAN) checkpoint to ``.weights.h5`` + YAML."""
    quiet_tensorflow(argv)  # before anything imports TensorFlow
    parser = argparse.ArgumentParser(
        prog="python -m gradtts_tf.convert",
        description="Convert an official PyTorch Grad-TTS checkpoint (grad-tts.pt) for Keras.",
    )
    parser.add_argument("--checkpoint", required=True, help="official .pt state_dict or .npz")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--params", help="JSON of the official GradTTS constructor arguments")
    group.add_argument("--config", help="our YAML config whose model section matches")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--vocoder-config",
        help="official HiFi-GAN JSON (config_v1.json): convert a HiFi-GAN generator "
        "checkpoint (generator_v1) instead; --config may give the audio settings",
    )
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    if args.vocoder_config:
        _convert_hifigan(args)
        return

    if args.config:
        config = load_config(args.config)
        model = gradtts_from_official(args.checkpoint, config)
    else:
        params = json.loads(Path(args.params).read_text()) if args.params else {}
        config = config_from_official(params)
        model = gradtts_from_official(args.checkpoint, config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_weights(out / "model.weights.h5")
    config.save(out / "config.yaml")
    n_params = sum(int(np.prod(v.shape)) for v in model.weights)
    print(f"wrote {out / 'model.weights.h5'} ({n_params:,} parameters) and {out / 'config.yaml'}")


if __name__ == "__main__":
    main()
