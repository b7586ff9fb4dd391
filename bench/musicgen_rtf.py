"""Real-time factor of MusicGen (musicgen-small's shape, random weights: no download), batched vs
one segment at a time — the choice musicvid's ``musicgen-local`` generator makes.

    .venv/bin/python bench/musicgen_rtf.py                      # CUDA when present, else CPU
    .venv/bin/python bench/musicgen_rtf.py --seconds 1 --segments 4 --device cpu

Prints seconds of audio per second of wall time (RTF > 1: faster than real time) for both ways and
their ratio, measured in the same run on the same model. Random weights run exactly the same
computation per token as trained ones (same shapes, same number of tokens), so the timing holds.
"""

from __future__ import annotations

import argparse
import math
import time


def musicgen_small_shaped():
    from transformers import (
        ByT5Tokenizer,
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    # facebook/musicgen-small: t5-base text encoder, 24-layer 1024-wide decoder, EnCodec 32 kHz.
    text = T5Config(vocab_size=32128, d_model=768, d_ff=3072, num_layers=12, num_heads=12, d_kv=64)
    audio = EncodecConfig(sampling_rate=32000, audio_channels=1, hidden_size=128, num_filters=64,
                          num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4], codebook_size=2048,
                          codebook_dim=128, target_bandwidths=[2.2], use_causal_conv=False, normalize=False,
                          pad_mode="reflect", norm_type="weight_norm", compress=2, num_lstm_layers=2)
    decoder = MusicgenDecoderConfig(vocab_size=2048, hidden_size=1024, num_hidden_layers=24,
                                    num_attention_heads=16, ffn_dim=4096, num_codebooks=4,
                                    max_position_embeddings=2048, pad_token_id=2048, bos_token_id=2048)
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict(),
                            decoder_start_token_id=2048, pad_token_id=2048)
    return MusicgenForConditionalGeneration(config).eval(), ByT5Tokenizer()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per segment, s")
    parser.add_argument("--segments", type=int, default=4, help="segments (the batch size)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = parser.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from musicvid_core.adapters.model.musicgen_common import max_new_tokens

    hf_logging.set_verbosity_error()  # musicgen's pad id (2048) sits past the vocabulary by design

    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model, tokenizer = musicgen_small_shaped()
    model = model.to(device)
    print(f"built the random model in {time.perf_counter() - t0:.1f} s", flush=True)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    texts = [f"segment {i}: warm acoustic guitar, 96 bpm" for i in range(args.segments)]
    tokens = max_new_tokens(args.seconds)

    def run(batch: list[str]) -> float:
        inputs = tokenizer(text=batch, padding=True, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in inputs.items()}
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=tokens, do_sample=True, guidance_scale=3.0)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        assert out.shape[0] == len(batch) and out.shape[-1] >= math.floor(args.seconds * 32000 * 0.98)
        return time.perf_counter() - t0

    audio_s = args.seconds * args.segments
    print(f"device {device}  threads {torch.get_num_threads()}  model {params:.0f} M parameters "
          f"(musicgen-small shape, random weights)", flush=True)
    print(f"{args.segments} segments x {args.seconds:g} s = {audio_s:g} s of audio, {tokens} tokens each",
          flush=True)
    run(texts[:1])  # warm-up (kernels, allocator)
    batched = run(texts)
    print(f"batched     {batched:8.2f} s wall   RTF {audio_s / batched:6.3f}", flush=True)
    single = sum(run([t]) for t in texts)
    print(f"one by one  {single:8.2f} s wall   RTF {audio_s / single:6.3f}")
    print(f"batched is {single / batched:.2f}x faster than one by one")


if __name__ == "__main__":
    main()
