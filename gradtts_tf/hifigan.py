"""HiFi-GAN as one `keras.Model`: generator + MPD + MSD, trained with `model.fit`.

`HiFiGAN.train_step` follows the official ``train.py`` step:

1. generate ``y_hat = G(mel)``;
2. discriminator update (its own optimizer, only MPD/MSD variables): least-squares
   loss ``mean((1 - D(y))^2) + mean(D(y_hat)^2)`` summed over all sub-discriminators,
   with ``y_hat`` detached;
3. generator update (its own optimizer, only generator variables) against the
   *updated* discriminators: ``adv + fm + 45 * mel`` where ``adv = sum mean((1 -
   D(y_hat))^2)``, ``fm = 2 * sum mean|f(y) - f(y_hat)|`` over every feature map and
   ``mel`` is the L1 distance of the log-mels of ``y`` and ``y_hat`` (``loss_f_max``,
   Nyquist by default, as the official ``fmax_for_loss``).

Both optimizers are AdamW (``lr`` 2e-4, betas 0.8/0.99, weight decay 0.01, eps 1e-8:
torch's ``AdamW`` defaults as used officially); `ExponentialLRPerEpoch` multiplies
both learning rates by ``lr_decay`` (0.999) after every epoch.

Real and generated audio go through each discriminator as one concatenated batch
(``[2B, T]``), which computes the same numbers as the official two calls.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from gradtts_tf.audio import mel_spectrogram
from gradtts_tf.config import Config
from gradtts_tf.layers.hifigan import HiFiGANGenerator
from gradtts_tf.layers.hifigan_discriminators import (
    MPD_CHANNELS,
    MPD_PERIODS,
    MSD_CHANNELS,
    MSD_GROUPS,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)


def discriminator_loss(real_logits: list, fake_logits: list) -> tf.Tensor:
    """Least-squares GAN loss of the discriminators: ``sum mean((1-r)^2) + mean(f^2)``."""
    loss = 0.0
    for r, f in zip(real_logits, fake_logits, strict=True):
        loss += tf.reduce_mean(tf.square(1.0 - r)) + tf.reduce_mean(tf.square(f))
    return loss


def generator_adversarial_loss(fake_logits: list) -> tf.Tensor:
    """Least-squares GAN loss of the generator: ``sum mean((1 - f)^2)``."""
    loss = 0.0
    for f in fake_logits:
        loss += tf.reduce_mean(tf.square(1.0 - f))
    return loss


def feature_matching_loss(real_fmaps: list, fake_fmaps: list) -> tf.Tensor:
    """``2 * sum mean|real - fake|`` over every feature map of every sub-discriminator."""
    loss = 0.0
    for dr, dg in zip(real_fmaps, fake_fmaps, strict=True):
        for r, g in zip(dr, dg, strict=True):
            loss += tf.reduce_mean(tf.abs(r - g))
    return 2.0 * loss


def _split_halves(logits: list, fmaps: list) -> tuple[list, list, list, list]:
    """Splits outputs of a ``[real; fake]`` batch into real and fake halves."""

    def halves(t):
        n = tf.shape(t)[0] // 2
        return t[:n], t[n:]

    real_l, fake_l = zip(*[halves(t) for t in logits], strict=True)
    real_f = [[halves(t)[0] for t in d] for d in fmaps]
    fake_f = [[halves(t)[1] for t in d] for d in fmaps]
    return list(real_l), list(fake_l), real_f, fake_f


@keras.saving.register_keras_serializable(package="gradtts_tf")
class HiFiGAN(keras.Model):
    """HiFi-GAN generator with its multi-period and multi-scale discriminators.

    Args:
        n_mels, sample_rate, n_fft, hop_length, win_length, f_min: Mel settings
            (`gradtts_tf.config.AudioConfig`), used by the mel-L1 loss.
        loss_f_max: Upper mel edge of the loss; ``None``: Nyquist.
        resblock ... resblock_dilation_sizes: Generator layout (official JSON keys).
        mpd_periods, mpd_channels, msd_channels, msd_groups: Discriminator layout.
        mel_loss_weight: Weight of the mel L1 loss (official 45).
        weight_norm: Weight-norm parametrisation in the generator (official: yes).

    Batches are dicts: ``mel`` float32 ``[B, T, n_mels]`` and ``audio`` float32
    ``[B, T * hop_length]``.
    """

    def __init__(
        self,
        n_mels: int = 80,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int = 1024,
        f_min: float = 0.0,
        loss_f_max: float | None = None,
        resblock: str = "1",
        upsample_rates: list[int] | tuple[int, ...] = (8, 8, 2, 2),
        upsample_kernel_sizes: list[int] | tuple[int, ...] = (16, 16, 4, 4),
        upsample_initial_channel: int = 512,
        resblock_kernel_sizes: list[int] | tuple[int, ...] = (3, 7, 11),
        resblock_dilation_sizes: list | tuple = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        mpd_periods: list[int] | tuple[int, ...] = MPD_PERIODS,
        mpd_channels: list[int] | tuple[int, ...] = MPD_CHANNELS,
        msd_channels: list[int] | tuple[int, ...] = MSD_CHANNELS,
        msd_groups: list[int] | tuple[int, ...] = MSD_GROUPS,
        mel_loss_weight: float = 45.0,
        weight_norm: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_mels = n_mels
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.f_min = f_min
        self.loss_f_max = loss_f_max
        self.mel_loss_weight = mel_loss_weight
        self.weight_norm = weight_norm
        self.generator = HiFiGANGenerator(
            n_mels=n_mels,
            resblock=resblock,
            upsample_rates=upsample_rates,
            upsample_kernel_sizes=upsample_kernel_sizes,
            upsample_initial_channel=upsample_initial_channel,
            resblock_kernel_sizes=resblock_kernel_sizes,
            resblock_dilation_sizes=resblock_dilation_sizes,
            weight_norm=weight_norm,
            name="generator",
        )
        if self.generator.hop_length != hop_length:
            raise ValueError(
                f"HiFiGAN: prod(upsample_rates)={self.generator.hop_length} must equal "
                f"hop_length={hop_length}"
            )
        self.mpd = MultiPeriodDiscriminator(mpd_periods, mpd_channels, name="mpd")
        self.msd = MultiScaleDiscriminator(msd_channels, msd_groups, name="msd")
        self.g_optimizer = None
        self.d_optimizer = None
        self._trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("g_loss", "d_loss", "mel_loss", "fm_loss", "adv_loss")
        }

    @classmethod
    def from_config_tree(cls, config: Config, **overrides) -> HiFiGAN:
        """Builds (weights created) from the ``audio`` and ``vocoder`` sections."""
        a, v = config.audio, config.vocoder
        kwargs = dict(
            n_mels=a.n_mels,
            sample_rate=a.sample_rate,
            n_fft=a.n_fft,
            hop_length=a.hop_length,
            win_length=a.win_length,
            f_min=a.f_min,
            loss_f_max=v.loss_f_max,
            resblock=v.resblock,
            upsample_rates=v.upsample_rates,
            upsample_kernel_sizes=v.upsample_kernel_sizes,
            upsample_initial_channel=v.upsample_initial_channel,
            resblock_kernel_sizes=v.resblock_kernel_sizes,
            resblock_dilation_sizes=v.resblock_dilation_sizes,
            mpd_periods=v.mpd_periods,
            mpd_channels=v.mpd_channels,
            msd_channels=v.msd_channels,
            msd_groups=v.msd_groups,
        )
        kwargs.update(overrides)
        model = cls(**kwargs)
        model.build()
        return model

    def build(self, input_shape=None):
        self.generator.build((None, None, self.n_mels))
        self.mpd.build((None, None))
        self.msd.build((None, None))
        self.built = True

    @property
    def generator_variables(self) -> list:
        """Trainable variables the generator optimizer updates."""
        return self.generator.trainable_variables

    @property
    def discriminator_variables(self) -> list:
        """Trainable variables the discriminator optimizer updates (MPD + MSD)."""
        return self.mpd.trainable_variables + self.msd.trainable_variables

    def compile(self, g_optimizer=None, d_optimizer=None, learning_rate: float = 2e-4,
                adam_b1: float = 0.8, adam_b2: float = 0.99, weight_decay: float = 0.01,
                **kwargs):
        """Sets (and builds) the two optimizers; default AdamW with the official settings.

        Args:
            g_optimizer: Generator optimizer (default AdamW from the other arguments).
            d_optimizer: Discriminator optimizer (same default).
            learning_rate, adam_b1, adam_b2, weight_decay: Settings of the defaults.
            **kwargs: Passed to `keras.Model.compile` (e.g. ``jit_compile``).
        """

        def adamw(name):
            return keras.optimizers.AdamW(
                learning_rate=learning_rate, beta_1=adam_b1, beta_2=adam_b2,
                weight_decay=weight_decay, epsilon=1e-8, name=name,
            )

        # No Keras-level optimizer: fit() would build it on *all* trainable variables.
        super().compile(optimizer=None, **kwargs)
        self.g_optimizer = g_optimizer or adamw("g_optimizer")
        self.d_optimizer = d_optimizer or adamw("d_optimizer")
        if not self.built:
            self.build()
        self.g_optimizer.build(self.generator_variables)
        self.d_optimizer.build(self.discriminator_variables)

    @property
    def metrics(self):
        return list(self._trackers.values())

    def call(self, mel, training=False):
        """Generator output: ``[B, T, n_mels] -> [B, T * hop]``."""
        return self.generator(mel, training=training)

    def loss_mel(self, audio: tf.Tensor) -> tf.Tensor:
        """Log-mel of the loss (``loss_f_max``): ``[B, samples] -> [B, frames, n_mels]``."""
        return mel_spectrogram(
            audio, self.sample_rate, self.n_fft, self.hop_length, self.win_length,
            self.n_mels, self.f_min, self.loss_f_max,
        )

    def _discriminate(self, real: tf.Tensor, fake: tf.Tensor, training: bool):
        """Runs MPD and MSD on ``[real; fake]``; returns real/fake logits and fmaps."""
        both = tf.concat([real, fake], axis=0)  # [2B, T]
        outs = [_split_halves(*d(both, training=training)) for d in (self.mpd, self.msd)]
        real_l = outs[0][0] + outs[1][0]
        fake_l = outs[0][1] + outs[1][1]
        real_f = outs[0][2] + outs[1][2]
        fake_f = outs[0][3] + outs[1][3]
        return real_l, fake_l, real_f, fake_f

    def train_step(self, data):
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        mel = tf.cast(batch["mel"], tf.float32)  # [B, T, n_mels]
        audio = tf.cast(batch["audio"], tf.float32)  # [B, T * hop]
        g_vars, d_vars = self.generator_variables, self.discriminator_variables
        with tf.GradientTape() as g_tape:
            y_hat = self.generator(mel, training=True)  # [B, T * hop]
            with g_tape.stop_recording():
                # Discriminator update on the detached generator output.
                with tf.GradientTape() as d_tape:
                    real_l, fake_l, _, _ = self._discriminate(
                        audio, tf.stop_gradient(y_hat), training=True
                    )
                    d_loss = discriminator_loss(real_l, fake_l)
                d_grads = d_tape.gradient(d_loss, d_vars)
                self.d_optimizer.apply_gradients(zip(d_grads, d_vars, strict=True))
            # Generator update against the updated discriminators.
            mel_l1 = tf.reduce_mean(tf.abs(self.loss_mel(audio) - self.loss_mel(y_hat)))
            _, fake_l, real_f, fake_f = self._discriminate(audio, y_hat, training=True)
            adv = generator_adversarial_loss(fake_l)
            fm = feature_matching_loss(real_f, fake_f)
            g_loss = adv + fm + self.mel_loss_weight * mel_l1
        g_grads = g_tape.gradient(g_loss, g_vars)
        self.g_optimizer.apply_gradients(zip(g_grads, g_vars, strict=True))
        values = {"g_loss": g_loss, "d_loss": d_loss, "mel_loss": mel_l1, "fm_loss": fm,
                  "adv_loss": adv}
        for name, value in values.items():
            self._trackers[name].update_state(value)
        return {name: t.result() for name, t in self._trackers.items()}

    def test_step(self, data):
        """Validation: unweighted mel L1 of the generator (official "Mel-Spec. Error")."""
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        mel = tf.cast(batch["mel"], tf.float32)
        audio = tf.cast(batch["audio"], tf.float32)
        y_hat = self.generator(mel, training=False)
        mel_l1 = tf.reduce_mean(tf.abs(self.loss_mel(audio) - self.loss_mel(y_hat)))
        self._trackers["mel_loss"].update_state(mel_l1)
        return {"mel_loss": self._trackers["mel_loss"].result()}

    def get_config(self):
        config = super().get_config()
        g = self.generator
        config.update(
            n_mels=self.n_mels,
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            f_min=self.f_min,
            loss_f_max=self.loss_f_max,
            resblock=g.resblock,
            upsample_rates=g.upsample_rates,
            upsample_kernel_sizes=g.upsample_kernel_sizes,
            upsample_initial_channel=g.upsample_initial_channel,
            resblock_kernel_sizes=g.resblock_kernel_sizes,
            resblock_dilation_sizes=g.resblock_dilation_sizes,
            mpd_periods=self.mpd.periods,
            mpd_channels=self.mpd.channels,
            msd_channels=self.msd.channels,
            msd_groups=self.msd.groups,
            mel_loss_weight=self.mel_loss_weight,
            weight_norm=self.weight_norm,
        )
        return config


class ExponentialLRPerEpoch(keras.callbacks.Callback):
    """Sets both learning rates to ``lr * decay ** epoch`` at the start of each epoch.

    The official trainer steps ``ExponentialLR(gamma=lr_decay)`` after every epoch;
    deriving the rate from the epoch index keeps it right when a run resumes.
    """

    def __init__(self, learning_rate: float, decay: float):
        super().__init__()
        self.learning_rate = learning_rate
        self.decay = decay

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.learning_rate * self.decay**epoch
        for opt in (self.model.g_optimizer, self.model.d_optimizer):
            opt.learning_rate = lr

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(self.learning_rate * self.decay**epoch)
