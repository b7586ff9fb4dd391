"""Convert BeatNet's model 1 weights to ``musicvid_core/metrics/beatnet_model_1.npz`` and check the
numpy port (``musicvid_core/metrics/learned_beats.py``) against BeatNet's own features and network.

Run once, by hand, in an interpreter that has BeatNet 1.1.3, madmom 0.16.1 and torch (the CPU build)
-- the same one ``bench/outside_judge.py learned`` uses; its docstring says how to make it:

    /path/to/judge-python data/beatnet_weights.py convert
    /path/to/judge-python data/beatnet_weights.py check A.wav [B.wav ...]

``convert`` copies the tensors as float32, unchanged, with the licence notice (CC BY 4.0).
``check`` prints, per file, the largest difference of the features and of the activations
between the port (over the whole file, and in blocks as musicvid runs it) and BeatNet (torch),
and how many frames' most likely class differs.
musicvid itself never imports BeatNet, madmom or torch.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORT = ROOT / "musicvid_core" / "metrics" / "learned_beats.py"


def _port():
    """The numpy port, loaded from its file (the judge's interpreter has no musicvid installed)."""
    spec = importlib.util.spec_from_file_location("learned_beats", PORT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _beatnet():
    import numpy as np

    for alias, kind in (("int", int), ("float", float), ("bool", bool)):  # madmom 0.16.1's compiled code
        if alias not in np.__dict__:
            setattr(np, alias, kind)
    sys.modules.setdefault("librosa", types.ModuleType("librosa"))  # imported by BeatNet.common, unused
    import BeatNet
    from BeatNet.log_spect import LOG_SPECT
    from BeatNet.model import BDA

    return BeatNet, LOG_SPECT, BDA


def convert() -> None:
    import numpy as np
    import torch

    BeatNet, _, _ = _beatnet()
    port = _port()
    state = torch.load(os.path.join(os.path.dirname(BeatNet.__file__), "models", "model_1_weights.pt"),
                       map_location="cpu")
    arrays = {k: v.numpy().astype(np.float32) for k, v in state.items()}
    np.savez_compressed(port.WEIGHTS, notice=np.array(port.BEATNET_NOTICE), **arrays)
    print(f"{port.WEIGHTS}: {len(arrays)} tensors, {sum(a.size for a in arrays.values())} values")


def check(wavs: list[str]) -> None:
    import numpy as np
    import soundfile as sf
    import torch
    from scipy.signal import resample_poly

    _, LOG_SPECT, BDA = _beatnet()
    port = _port()
    sr = port.SR
    ref_features = LOG_SPECT(sample_rate=sr, win_length=int(0.064 * sr), hop_size=int(0.02 * sr), n_bands=[24],
                             mode="offline")
    net = BDA(272, 150, 2, "cpu")
    import BeatNet
    net.load_state_dict(torch.load(os.path.join(os.path.dirname(BeatNet.__file__), "models", "model_1_weights.pt"),
                                   map_location="cpu"))
    net.eval()
    for wav in wavs:
        y, rate = sf.read(wav, dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        if rate != sr:
            y = resample_poly(y, sr, rate).astype(np.float32)
        ref = ref_features.process_audio(y).T  # (frames, 272)
        with torch.no_grad():
            net.hidden, net.cell = torch.zeros(2, 1, 150), torch.zeros(2, 1, 150)
            ref_act = net.final_pred(net(torch.from_numpy(ref).unsqueeze(0))[0]).numpy().T
        ours = port.features(y)
        act = port.network(ours)
        blocked = port.mono_activations(y)
        differs = int(np.sum(act.argmax(1) != ref_act.argmax(1)))
        print(f"{Path(wav).name}: frames {ours.shape[0]} / {ref.shape[0]}, features max |diff| "
              f"{np.abs(ours - ref).max():.2e} (of max {np.abs(ref).max():.2f}), activations max |diff| "
              f"{np.abs(act - ref_act).max():.2e} (in blocks: {np.abs(blocked - ref_act).max():.2e}), "
              f"class differs on {differs} frames", flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "convert":
        convert()
    elif len(sys.argv) >= 3 and sys.argv[1] == "check":
        check(sys.argv[2:])
    else:
        sys.exit(__doc__)
