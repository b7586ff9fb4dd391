"""Generator ``musicgen-local`` (transformers MusicGen) on a tiny random model built in code, and
the duration handling shared with the SageMaker backend. No download: ByT5Tokenizer needs no files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from musicvid_core.adapters.model import musicgen_common as mc
from musicvid_core.domain.errors import ConfigurationError, GenerationError
from musicvid_core.domain.plan import Plan, Segment


def make_plan(durations, bpm=120.0, crossfade=0.35) -> Plan:
    t, segs = 0.0, []
    for i, d in enumerate(durations):
        segs.append(Segment(index=i, start=t, end=t + d, prompt=f"calm piano {i}", style="ambient",
                            mood="calm", bpm=bpm, key="A minor", energy=0.5))
        t += d
    return Plan(duration=t, prompt="calm piano", segments=segs, crossfade_s=crossfade)


# --- duration handling (no torch) ------------------------------------------------------------------
@pytest.mark.parametrize("seconds,bpm", [(10, 120), (30, 90), (30.35, 100), (45, 128), (61, 100), (95.5, 73),
                                         (200, 140), (31, 30)])
def test_split_on_bars_covers_the_clip_within_the_window(seconds, bpm):
    pieces = mc.split_on_bars(seconds, bpm)
    assert pieces[0][0] == 0 and all(length <= mc.MAX_WINDOW_S + 1e-9 for _, length in pieces)
    # consecutive pieces overlap by exactly the crossfade; the last one ends at the clip's end
    for (a, la), (b, _) in zip(pieces, pieces[1:]):
        assert a + la == pytest.approx(b + mc.XFADE_S)
    assert pieces[-1][0] + pieces[-1][1] == pytest.approx(seconds)
    if len(pieces) > 1:
        bar = 4 * 60 / bpm
        on_bar = [b for b, _ in pieces[1:] if abs(b / bar - round(b / bar)) < 1e-6]
        assert len(on_bar) >= len(pieces) - 2  # boundaries sit on bar lines unless the window forbids


def test_max_new_tokens_is_fifty_per_second_plus_the_delay_pattern():
    assert mc.max_new_tokens(30.0) == 1503 and mc.max_new_tokens(1.0) == 53
    assert mc.max_new_tokens(2.01) == 101 + 3


def test_fit_length_trims_with_a_fade_and_pads_with_silence():
    x = np.ones((100, 2), np.float32)
    short = mc.fit_length(x, 60, 1000)
    assert short.shape == (60, 2) and short[-1, 0] < 0.1 and short[0, 0] == 1
    long = mc.fit_length(x, 150, 1000)
    assert long.shape == (150, 2) and not long[100:].any() and long[:100].all()


def test_join_pieces_crossfades_at_equal_power():
    sr = 1000
    a = np.ones((1500, 1), np.float32)  # 1.0 s share + 0.5 s overlap
    b = np.ones((1000, 1), np.float32)
    out = mc.join_pieces([(0.0, a), (1.0, b)], sr, 2000, xfade_s=0.5)
    assert out.shape == (2000, 1)
    mid = out[1000:1500, 0]  # cos + sin of a quarter turn: power sums to 1 through the fade
    assert np.all(mid >= 1.0 - 1e-6) and mid.max() <= math.sqrt(2) + 1e-6
    assert np.allclose(out[:1000], 1) and np.allclose(out[1500:], 1)


def test_to_clip_is_exact_length_stereo_levelled_and_rejects_silence():
    plan = make_plan([2.0, 1.0])
    t = np.arange(32000 * 3) / 32000
    wave = (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    clip = mc.to_clip(wave, 32000, plan, 0, 48000)
    assert clip.shape == (plan.clip_samples(0, 48000), 2) and clip.dtype == np.float32
    assert np.abs(clip).max() <= 10 ** (-1 / 20) + 1e-6
    from musicvid_core.stages.compose.fx import measure_lufs, target_lufs

    assert measure_lufs(clip[:96000], 48000) == pytest.approx(target_lufs(0.5), abs=0.5)
    with pytest.raises(GenerationError, match="silent"):
        mc.to_clip(np.zeros(32000, np.float32), 32000, plan, 0, 48000)
    with pytest.raises(GenerationError):
        mc.to_clip(np.full(100, np.nan, np.float32), 32000, plan, 1, 48000)


# --- the transformers backend on a tiny random MusicGen --------------------------------------------
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def tiny_musicgen():
    """A MusicGen with the real architecture and musicgen-small's codec rates (32 kHz, 50 Hz,
    4 codebooks), a few thousand random weights. The same code path as a real checkpoint."""
    from transformers import (
        ByT5Tokenizer,
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    text = T5Config(vocab_size=384, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)
    audio = EncodecConfig(sampling_rate=32000, audio_channels=1, codebook_size=64, codebook_dim=8, hidden_size=8,
                          num_filters=4, upsampling_ratios=[8, 8, 5, 2], num_residual_layers=1,
                          target_bandwidths=[2.2], compress=2, num_lstm_layers=1)
    decoder = MusicgenDecoderConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    ffn_dim=32, num_codebooks=4, max_position_embeddings=4096,
                                    pad_token_id=64, bos_token_id=64)
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict(),
                            decoder_start_token_id=64, pad_token_id=64)
    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(config).eval()
    with torch.no_grad():  # random init leaves the codec's codebooks at zero: every code would sound alike
        for name, buffer in model.audio_encoder.named_buffers():
            if name.endswith("codebook.embed"):
                buffer.normal_()
    return model, ByT5Tokenizer()


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)  # a tiny model is fastest on one thread (and the CI box has two cores)
    return tiny_musicgen()


@pytest.fixture
def gen_settings(settings):
    return settings.model_copy(update={"musicgen_device": "cpu", "musicgen_threads": 1})


def counting(model):
    calls = []
    original = model.generate

    def generate(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    model.generate = generate
    return calls


def test_all_segments_come_from_one_batched_generate_call(gen_settings, tiny):
    from musicvid_core.adapters.model.musicgen_local import LocalMusicGenGenerator

    model, tokenizer = tiny
    gen = LocalMusicGenGenerator(gen_settings, model=model, processor=tokenizer)
    calls = counting(model)
    plan = make_plan([1.2, 0.8, 1.0])
    try:
        clips = [gen.generate(plan, i, seed=3) for i in (2, 0, 1)]
    finally:
        del model.generate
    assert len(calls) == 1 and calls[0]["input_ids"].shape[0] == 3  # one batch of three prompts
    # tokens for the longest clip (1.2 s + 0.35 s tail) at 50 per second, plus the delay pattern
    assert calls[0]["max_new_tokens"] == math.ceil(1.55 * 50) + 3
    for i, clip in zip((2, 0, 1), clips):
        assert clip.shape == (plan.clip_samples(i, 48000), 2) and clip.dtype == np.float32
        assert np.isfinite(clip).all() and 0 < np.abs(clip).max() <= 1.0
    assert gen.device == "cpu" and gen.model_rate == 32000 and gen.frame_rate == 50 and gen.codebooks == 4


def test_same_seed_same_music_and_a_new_plan_generates_again(gen_settings, tiny):
    from musicvid_core.adapters.model.musicgen_local import LocalMusicGenGenerator

    model, tokenizer = tiny
    gen = LocalMusicGenGenerator(gen_settings, model=model, processor=tokenizer)
    plan = make_plan([1.0, 0.6])
    first = gen.generate(plan, 1, seed=5)
    other = LocalMusicGenGenerator(gen_settings, model=model, processor=tokenizer)
    assert np.array_equal(first, other.generate(plan, 1, seed=5))
    assert not np.array_equal(first, other.generate(plan, 1, seed=6))
    with pytest.raises(GenerationError, match="outside the plan"):
        gen.generate(plan, 2, seed=5)


def test_long_segments_are_split_on_bars_and_crossfaded(gen_settings, tiny, monkeypatch):
    from musicvid_core.adapters.model.musicgen_local import LocalMusicGenGenerator

    monkeypatch.setattr(mc, "MAX_WINDOW_S", 1.0)  # a 30 s window in miniature
    monkeypatch.setattr(mc, "XFADE_S", 0.25)
    model, tokenizer = tiny
    gen = LocalMusicGenGenerator(gen_settings, model=model, processor=tokenizer)
    calls = counting(model)
    plan = make_plan([2.4, 0.6], bpm=240)  # bar = 1 s; clip 0 is 2.75 s -> 4 pieces of <= 1 s
    try:
        clips = gen.generate_all(plan, seed=1)
    finally:
        del model.generate
    pieces = mc.plan_pieces(plan)
    assert [p.index for p in pieces].count(0) >= 3 and len(calls) == 1
    assert calls[0]["input_ids"].shape[0] == len(pieces)
    assert calls[0]["max_new_tokens"] == mc.max_new_tokens(max(p.length_s for p in pieces))
    assert [c.shape[0] for c in clips] == [plan.clip_samples(i, 48000) for i in range(2)]


def test_loads_a_saved_model_folder_offline(gen_settings, tiny, tmp_path, monkeypatch):
    from musicvid_core.services import GENERATORS, load_plugin

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = tiny
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    cls = load_plugin(GENERATORS, "generator", "musicgen-local")
    gen = cls(gen_settings.model_copy(update={"musicgen_model_dir": tmp_path / "m"}))
    clip = gen.generate(make_plan([0.5]), 0, seed=0)
    assert clip.shape == (24000, 2)
    with pytest.raises(ConfigurationError, match="no model"):
        cls(gen_settings.model_copy(update={"musicgen_model_dir": tmp_path / "missing"}))
    with pytest.raises(ConfigurationError, match="MUSICGEN_MODEL_DIR"):
        cls(gen_settings)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigurationError, match="CUDA"):
            cls(gen_settings.model_copy(update={"musicgen_device": "cuda"}), model=model, processor=tokenizer)


def test_fifty_tokens_per_second_plus_the_delay_pattern_gives_exact_seconds(tiny):
    model, tokenizer = tiny
    inputs = tokenizer(text=["a"], return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=mc.max_new_tokens(1.0), do_sample=True)
    assert out.shape[-1] == 32000  # 1.00 s at 32 kHz: 53 tokens = 50 frames + 3 delay steps


@pytest.mark.slow
def test_pipeline_with_the_local_musicgen_generator(services, short_video, tiny, tmp_path, monkeypatch):
    """The real workflow with --generator musicgen-local built by the registry from a saved folder:
    every segment from one batched call, the Map's iterations served from it, a mastered output."""
    from musicvid_core.domain import Status
    from musicvid_core.metrics import measure_loudness
    from musicvid_core.workflow import submit as service

    model, tokenizer = tiny
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    services.settings = services.settings.model_copy(update={
        "generator": "musicgen-local", "musicgen_model_dir": tmp_path / "m", "musicgen_device": "cpu",
        "musicgen_threads": 1})
    from musicvid_core.adapters.model.musicgen_local import LocalMusicGenGenerator

    batches = []
    batch = LocalMusicGenGenerator.generate_all
    monkeypatch.setattr(LocalMusicGenGenerator, "generate_all",
                        lambda self, plan, seed: batches.append(len(plan.segments)) or batch(self, plan, seed))
    uri = service.upload_file(services, short_video.path, "tester")
    job = service.run(services, service.submit_new(services, uri, "calm piano", "tester"))
    assert job.status == Status.COMPLETED, job.error
    gen = services.generator
    plan = services.objects.get_json(services.objects.key_from_uri(job.plan_url))
    # every segment came from one batch, and the mix step let the batch go (MusicGenerator.release)
    assert gen.name == "musicgen-local" and batches == [len(plan["segments"])] and gen._cache is None
    assert abs(measure_loudness(service.output_path(services, job)).integrated_lufs + 14) <= 1.0
