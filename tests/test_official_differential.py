"""Differential tests against the official PyTorch Grad-TTS (the ``grad-tts`` package).

Each case draws a random small official configuration and random inputs from a printed
seed, perturbs the official random init (so zero-initialised gates take part), copies
the weights into our model and compares the two. Lengths, durations and alignments must
be identical; values agree to float32 tolerances:

- text encoder and aligned ``mu_y``: ``1e-4`` of the tensor's magnitude (float32
  convolutions and attention summed in another order, a few ulps a layer);
- synthesis: ``2e-4`` of the magnitude after 1-10 reverse steps (each step feeds the
  U-Net the previous step's output, so the per-step float32 differences accumulate);
- losses: ``1e-4`` relative (sums over a batch).

A token whose ``exp(logw)`` lies within ``1e-5`` of an integer may round up in one
implementation and not the other (``exp`` itself differs in the last bit); such a case
is reported and its alignment is compared from the official durations instead, via
`durations_to_path`. Reproduce a failure with ``GRADTTS_DIFF_SEED=<seed>``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import REF

from gradtts_tf.convert import gradtts_from_official
from gradtts_tf.ops import durations_to_path, maximum_path

torch = pytest.importorskip("torch", reason="needs torch==2.13.0 (the `test` extra)")
official_tts = pytest.importorskip(
    "grad_tts.model.tts", reason="needs grad-tts==0.0.4 (the `test` extra)"
)
official_align = pytest.importorskip("grad_tts.model.monotonic_align")
official_utils = pytest.importorskip("grad_tts.model.utils")

LENGTH_SCALES = (0.7, 0.83, 0.91, 1.0, 1.13, 1.3, 1.77)
# Each model: 14 alignment cases (7 length scales x 2 batches), one synthesis, losses,
# MAS: 17 cases; 136 in the default suite, 1020 more in the slow sweep (CI runs both).
FAST_MODELS = 8
SLOW_MODELS = 60


def _cl(a) -> np.ndarray:
    """Official ``[B, C, T]`` -> our ``[B, T, C]``."""
    return np.transpose(np.asarray(a), (0, 2, 1))


def random_params(rng: np.random.Generator) -> dict:
    """A random small official ``GradTTS(...)`` configuration."""
    n_heads = int(rng.integers(1, 5))
    n_spks = int(rng.choice([1, 1, 3]))
    return {
        "n_vocab": int(rng.integers(5, 40)),
        "n_spks": n_spks,
        "spk_emb_dim": int(rng.choice([8, 16])),
        "n_enc_channels": n_heads * int(rng.integers(2, 9)),
        "filter_channels": int(rng.integers(8, 40)),
        "filter_channels_dp": int(rng.integers(8, 40)),
        "n_heads": n_heads,
        "n_enc_layers": int(rng.integers(1, 4)),
        "enc_kernel": int(rng.choice([1, 3, 5])),
        "enc_dropout": 0.1,
        "window_size": int(rng.integers(1, 5)),
        # The official U-Net's speaker MLP always outputs 80 features (its estimator
        # is built without n_feats), so multi-speaker models need 80.
        "n_feats": int(rng.choice([16, 80])) if n_spks == 1 else 80,
        "dec_dim": int(rng.choice([8, 16])),
        "beta_min": float(rng.uniform(0.01, 0.2)),
        "beta_max": float(rng.uniform(5.0, 20.0)),
        "pe_scale": int(rng.choice([1, 1000])),
    }


def build_pair(seed: int):
    """Official model (eval mode, perturbed weights) and ours with the same weights."""
    rng = np.random.default_rng(seed)
    params = random_params(rng)
    torch.manual_seed(seed)
    peer = official_tts.GradTTS(**params).eval()
    with torch.no_grad():
        for p in peer.parameters():
            p.add_(0.05 * torch.randn_like(p))
        # Larger durations than the random init's ~1 frame a token, so length scales
        # move tokens across frame boundaries.
        peer.encoder.proj_w.proj.bias.add_(float(rng.uniform(0.5, 2.5)))
    ours = gradtts_from_official(peer.state_dict(), params)
    return rng, params, peer, ours


def random_batch(rng: np.random.Generator, params: dict, max_len: int = 40):
    """Ragged token ids ``[B, T_x]`` (T_x from 1), lengths and speakers."""
    batch = int(rng.integers(1, 5))
    lengths = rng.integers(1, max_len + 1, size=batch)
    lengths[int(rng.integers(batch))] = lengths.max()  # one item fills the padding
    x = rng.integers(0, params["n_vocab"], size=(batch, int(lengths.max())))
    for b, n in enumerate(lengths):
        x[b, n:] = 0
    spk = rng.integers(0, params["n_spks"], size=batch) if params["n_spks"] > 1 else None
    return x.astype(np.int64), lengths.astype(np.int64), spk


def _peer_encode(peer, x, lengths, spk):
    spk_emb = peer.spk_emb(torch.from_numpy(spk)) if spk is not None else None
    return peer.encoder(torch.from_numpy(x), torch.from_numpy(lengths), spk_emb)


def _close(ours, theirs, rel, what):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    scale = max(float(np.abs(theirs).max()), 1.0)
    err = float(np.abs(ours - theirs).max())
    assert err <= rel * scale, f"{what}: max abs diff {err:.3g} > {rel} x {scale:.3g}"


def _borderline(logw, x_mask) -> bool:
    w = np.exp(np.asarray(logw, np.float64)) * np.asarray(x_mask)
    return bool((np.abs(w - np.round(w)) < 1e-5 * np.maximum(w, 1.0))[np.asarray(x_mask) > 0]
                .any())


def _official_durations(logw, x_mask, length_scale):
    """The official forward's length and path arithmetic (``GradTTS.forward``)."""
    w_ceil = torch.ceil(torch.exp(logw) * x_mask) * length_scale
    y_lengths = torch.clamp_min(torch.sum(w_ceil, [1, 2]), 1).long()
    padded = official_utils.fix_len_compatibility(int(y_lengths.max()))
    y_mask = official_utils.sequence_mask(y_lengths, padded).unsqueeze(1).to(x_mask.dtype)
    attn_mask = x_mask.unsqueeze(-1) * y_mask.unsqueeze(2)
    return y_lengths, official_utils.generate_path(w_ceil.squeeze(1), attn_mask.squeeze(1))


class _Draws:
    """Stands in for ``torch.randn_like`` / ``torch.randn`` / ``torch.rand``: draws from
    a numpy generator and keeps what it drew, so our model gets the same noise."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.drawn = rng, []

    def normal(self, shape):
        value = self.rng.standard_normal(tuple(shape)).astype(np.float32)
        self.drawn.append(value)
        return torch.from_numpy(value)

    def randn_like(self, tensor, **_):
        return self.normal(tensor.shape)

    def randn(self, shape, **_):
        return self.normal(shape)

    def rand(self, shape, **_):
        value = self.rng.uniform(0.02, 0.98, size=tuple(np.atleast_1d(shape))).astype(np.float32)
        self.drawn.append(value)
        return torch.from_numpy(value)


def check_alignments(rng, params, peer, ours, where) -> int:
    """Encoder outputs, lengths, paths and ``mu_y`` at every length scale, 2 batches."""
    cases = 0
    for _ in range(2):
        x, lengths, spk = random_batch(rng, params)
        mu_x, logw, x_mask = _peer_encode(peer, x, lengths, spk)
        ours_mu, ours_logw, _ = ours._encode(
            tf.constant(x), tf.constant(lengths, tf.int32), ours._speaker(spk), training=False
        )
        _close(ours_mu, _cl(mu_x.numpy()), 1e-4, f"encoder mu_x, {where}")
        _close(ours_logw, _cl(logw.numpy()), 1e-4, f"encoder logw, {where}")
        borderline = _borderline(logw.numpy(), x_mask.numpy())
        for ls in LENGTH_SCALES:
            cases += 1
            y_lengths, peer_attn = _official_durations(logw, x_mask, ls)
            # Ours on the official logw: identical lengths and path.
            got_lengths, _, got_attn = durations_to_path(
                tf.constant(_cl(logw.numpy())), tf.constant(_cl(x_mask.numpy())), ls
            )
            np.testing.assert_array_equal(
                got_lengths.numpy(), y_lengths.numpy(), err_msg=f"y_lengths ls={ls}, {where}"
            )
            np.testing.assert_array_equal(
                got_attn.numpy(), peer_attn.numpy(), err_msg=f"path ls={ls}, {where}"
            )
            if borderline:  # exp's last bit decides a ceil: compared above on their logw
                print(f"ls={ls}: a duration on an integer boundary, end-to-end skipped")
                continue
            aligned = ours.align(x, lengths, length_scale=ls, spk=spk)
            np.testing.assert_array_equal(
                aligned["y_lengths"].numpy(), y_lengths.numpy(),
                err_msg=f"align y_lengths ls={ls}, {where}",
            )
            np.testing.assert_array_equal(
                aligned["attn"].numpy(), peer_attn.numpy(), err_msg=f"align attn ls={ls}, {where}"
            )
            peer_mu_y = torch.matmul(peer_attn.transpose(1, 2), mu_x.transpose(1, 2))
            _close(aligned["mu_y"], peer_mu_y, 1e-4, f"mu_y ls={ls}, {where}")
    return cases


# (steps, temperature, length_scale, stoc): each model runs one of them in turn (our
# eager U-Net calls are most of the time), so every setting meets many models.
SYNTHESIS_SETTINGS = (
    (1, 1.5, 1.0, False), (4, 0.7, 1.3, False), (10, 2.0, 0.91, False), (4, 1.5, 1.13, True),
)


def check_synthesis(rng, params, peer, ours, where, monkeypatch, settings) -> int:
    """Reverse diffusion (the ODE, or the SDE with ``stoc``) from the same noise."""
    cases = 0
    x, lengths, spk = random_batch(rng, params, max_len=6)
    _, logw, x_mask = _peer_encode(peer, x, lengths, spk)
    if _borderline(logw.numpy(), x_mask.numpy()):
        print("synthesis skipped: a duration on an integer boundary")
        return cases
    spk_t = None if spk is None else torch.from_numpy(spk)
    for steps, temperature, ls, stoc in settings:
        cases += 1
        draws = _Draws(rng)
        with monkeypatch.context() as m:
            m.setattr(torch, "randn_like", draws.randn_like)
            m.setattr(torch, "randn", draws.randn)
            mu_y, mel, attn = peer(
                torch.from_numpy(x), torch.from_numpy(lengths), steps, temperature,
                stoc=stoc, spk=spk_t, length_scale=ls,
            )
        what = f"synthesis steps={steps} T={temperature} ls={ls} stoc={stoc}, {where}"
        assert torch.isfinite(mel).all(), f"the official model diverged: {what}"
        eps = _cl(draws.drawn[0])
        if not stoc:
            out = ours.synthesise(x, lengths, n_timesteps=steps, temperature=temperature,
                                  length_scale=ls, spk=spk, noise=eps)
            got_attn, got_mu, got_mel = out["attn"], out["encoder_outputs"], out["model_outputs"]
        else:
            aligned = ours.align(x, lengths, length_scale=ls, spk=spk)
            z = aligned["mu_y"] + eps / temperature
            noise = np.stack([_cl(d) for d in draws.drawn[1:]])  # [steps, B, T, n_feats]
            got_mel = ours.decoder.reverse_diffusion(
                z, aligned["y_mask"], aligned["mu_y"], steps, stoc=True,
                spk_emb=ours._speaker(spk), noise=noise,
            )[:, : mel.shape[-1]]
            got_attn, got_mu = aligned["attn"], aligned["mu_y"][:, : mel.shape[-1]]
        np.testing.assert_array_equal(
            np.asarray(got_attn)[:, :, : attn.shape[-1]], attn[:, 0].numpy(), err_msg=what
        )
        _close(got_mu, _cl(mu_y.numpy()), 1e-4, f"mu_y {what}")
        _close(got_mel, _cl(mel.numpy()), 2e-4, f"mel {what}")
    return cases


def check_losses(rng, params, peer, ours, where, monkeypatch) -> int:
    """The three losses (MAS inside) with the same ``t`` and ``z``; MAS on its own."""
    x, lengths, spk = random_batch(rng, params, max_len=12)
    if x.shape[1] == 1:
        # The official compute_loss squeezes axis 1 of the [B, T_x, T_y] alignment, which
        # drops T_x itself when every text is one token long (an IndexError there).
        x, lengths = np.pad(x, ((0, 0), (0, 1))), np.maximum(lengths, 1)
        lengths[0] = 2
    frames = 4 * int(rng.integers(lengths.max() // 4 + 1, 12))
    y_lengths = rng.integers(lengths, frames + 1)
    y_lengths[0] = frames
    y = rng.standard_normal((len(x), params["n_feats"], frames)).astype(np.float32)
    draws = _Draws(rng)
    with monkeypatch.context() as m:
        m.setattr(torch, "rand", draws.rand)
        m.setattr(torch, "randn", draws.randn)
        peer_losses = peer.compute_loss(
            torch.from_numpy(x), torch.from_numpy(lengths), torch.from_numpy(y),
            torch.from_numpy(y_lengths), spk=None if spk is None else torch.from_numpy(spk),
        )
    batch = {"x": x, "x_lengths": lengths, "y": _cl(y), "y_lengths": y_lengths, "spk": spk}
    ours_losses = ours.compute_losses(batch, out_size=None, t=draws.drawn[0],
                                      z=_cl(draws.drawn[1]))
    for name, value in zip(("dur", "prior", "diff"), peer_losses, strict=True):
        np.testing.assert_allclose(
            ours_losses[f"{name}_loss"], value.item(), rtol=1e-4, err_msg=f"{name}, {where}"
        )
    # MAS on random log-likelihoods with ragged lengths: identical paths.
    t_x, t_y = int(rng.integers(1, 20)), int(rng.integers(20, 60))
    value = rng.standard_normal((3, t_x, t_y)).astype(np.float32)
    mask = np.zeros_like(value)
    for b in range(3):
        n_x = int(rng.integers(1, t_x + 1))
        mask[b, :n_x, : int(rng.integers(n_x, t_y + 1))] = 1.0
    peer_path = official_align.maximum_path(torch.from_numpy(value), torch.from_numpy(mask))
    np.testing.assert_array_equal(
        maximum_path(tf.constant(value), tf.constant(mask)).numpy(), peer_path.numpy(),
        err_msg=f"MAS, {where}",
    )
    return 2


def check_model(seed: int, monkeypatch) -> int:
    """Compares one random model on every path; returns the number of cases checked."""
    rng, params, peer, ours = build_pair(seed)
    where = f"seed {seed} (GRADTTS_DIFF_SEED={seed}), params {json.dumps(params)}"
    with torch.no_grad():
        cases = check_alignments(rng, params, peer, ours, where)
        settings = [SYNTHESIS_SETTINGS[seed % len(SYNTHESIS_SETTINGS)]]
        cases += check_synthesis(rng, params, peer, ours, where, monkeypatch, settings)
    cases += check_losses(rng, params, peer, ours, where, monkeypatch)
    return cases


def _seeds(count: int, offset: int = 0):
    if "GRADTTS_DIFF_SEED" in os.environ:
        return [int(os.environ["GRADTTS_DIFF_SEED"])]
    return range(offset, offset + count)


@pytest.mark.parametrize("seed", _seeds(FAST_MODELS))
def test_random_official_models(seed, monkeypatch):
    print(f"differential seed {seed}")
    assert check_model(seed, monkeypatch) >= 2 * len(LENGTH_SCALES) + 2


@pytest.mark.slow
@pytest.mark.parametrize("seed", _seeds(SLOW_MODELS, offset=1000))
def test_random_official_models_sweep(seed, monkeypatch):
    print(f"differential seed {seed}")
    assert check_model(seed, monkeypatch) >= 2 * len(LENGTH_SCALES) + 2


@pytest.mark.skipif(not REF.is_dir(), reason=f"reference fixtures not found at {REF}")
@pytest.mark.parametrize("name", ["gradtts_small", "gradtts_small_multispeaker"])
def test_installed_official_package_reproduces_the_reference_outputs(name, monkeypatch):
    """``grad-tts`` (what the differential tests compare against) gives the official
    reference outputs: identical lengths and alignments, values to float32 precision
    (``1e-5`` of the magnitude; another CPU's vector width or thread count reorders
    float32 sums, measured up to ~1e-6 here)."""
    params = json.loads((REF / f"{name}_config.json").read_text())
    io = dict(np.load(REF / f"{name}_io.npz"))
    peer = official_tts.GradTTS(**params).eval()
    peer.load_state_dict(torch.load(REF / f"{name}.pt", map_location="cpu", weights_only=True))
    x, x_lengths = torch.from_numpy(io["x"]), torch.from_numpy(io["x_lengths"])
    spk = torch.from_numpy(io["spk"]) if "spk" in io else None

    def close(got, key, rel):
        ref = io[key]
        err = float(np.abs(got.detach().numpy() - ref).max()) / max(np.abs(ref).max(), 1.0)
        assert err <= rel, f"{name} {key}: relative error {err:.2e}"

    with torch.no_grad():
        mu_x, logw, x_mask = peer.encoder(x, x_lengths, None)
        close(mu_x, "enc_mu_x", 1e-5)
        close(logw, "enc_logw", 1e-5)
        for key in sorted(k[: -len("_noise")] for k in io if k.endswith("_noise")):
            length_scale, steps = key[len("syn_ls"):].split("_n")
            with monkeypatch.context() as m:
                noise = torch.from_numpy(io[f"{key}_noise"])
                m.setattr(torch, "randn_like", lambda t, noise=noise, **_: noise)
                mu_y, mel, attn = peer(
                    x, x_lengths, int(steps), 1.5, spk=spk, length_scale=float(length_scale)
                )
            np.testing.assert_array_equal(attn.numpy(), io[f"{key}_attn"], err_msg=key)
            assert mel.shape[-1] == io[f"{key}_y_lengths"].max()
            close(mu_y, f"{key}_mu_y", 1e-5)
            close(mel, f"{key}_mel", 1e-5)
        est = peer.decoder.estimator(
            *(torch.from_numpy(io[k]) for k in ("est_x", "est_mask", "est_mu", "est_t")),
            peer.spk_emb(spk) if spk is not None else None,
        )
        close(est, "est_out", 1e-5)
    draws = iter([torch.from_numpy(io["loss_t"]), torch.from_numpy(io["loss_z"])])
    with monkeypatch.context() as m:
        m.setattr(torch, "rand", lambda *a, **k: next(draws))
        m.setattr(torch, "randn", lambda *a, **k: next(draws))
        losses = peer.compute_loss(x, x_lengths, torch.from_numpy(io["loss_y"]),
                                   torch.from_numpy(io["loss_y_lengths"]), spk=spk)
    for key, value in zip(("loss_dur", "loss_prior", "loss_diff"), losses, strict=True):
        np.testing.assert_allclose(value.item(), io[key], rtol=1e-5, err_msg=key)


@pytest.mark.skipif(not REF.is_dir(), reason=f"reference fixtures not found at {REF}")
def test_installed_official_mas_reproduces_the_reference_paths():
    cases = np.load(REF / "mas_cases.npz")
    names = sorted({k.rsplit("_", 1)[0] for k in cases.files})
    for case in names:
        path = official_align.maximum_path(
            torch.from_numpy(cases[f"{case}_value"]), torch.from_numpy(cases[f"{case}_mask"])
        )
        np.testing.assert_array_equal(path.numpy(), cases[f"{case}_path"], err_msg=case)
