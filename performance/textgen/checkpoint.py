"""Model folders: model.safetensors + model.json (the card). Never unpickles anything.

Training state for --resume lives beside them in train_state.safetensors + train_state.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from performance.textgen.base import ModelFileError


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A state dict safetensors accepts: tied (shared) weights stored once under their first name."""
    out, seen = {}, {}
    for name, t in module.state_dict().items():
        key = (t.data_ptr(), t.shape)
        if key in seen:
            continue
        seen[key] = name
        out[name] = t.detach().to("cpu").contiguous()
    return out


def save_weights(module: torch.nn.Module, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    save_file(_tensors(module), str(tmp))
    os.replace(tmp, path)


def load_weights(module: torch.nn.Module, path: Path, device: str = "cpu", kind: str = "") -> None:
    """Load weights into `module`; any problem becomes a ModelFileError naming the file (and the
    tensor: its names, shapes and dtypes must be what the card's `kind` builds)."""
    if not path.exists():
        raise ModelFileError(f"{path}: missing (the model's weights)")
    try:
        tensors = load_file(str(path), device=device)
    except Exception as e:  # safetensors raises its own error types for truncation and corruption
        raise ModelFileError(f"{path}: unreadable or truncated safetensors file ({e})") from None
    expected = module.state_dict()
    missing = [k for k in expected if k not in tensors and not _is_tied_alias(module, k)]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        raise ModelFileError(f"{path}: does not match model.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for k, t in tensors.items():
        want = expected[k]
        if want.is_floating_point() and not t.is_floating_point():
            # load_state_dict would cast bools and integers into the weights without a word: garbage out
            raise ModelFileError(f"{path}: tensor {k} is {str(t.dtype).removeprefix('torch.')}; the card's "
                                 f"{kind or 'network'} needs floating-point weights "
                                 "(float32, float16 or bfloat16)")
        if want.dtype != t.dtype and not want.is_floating_point():
            raise ModelFileError(f"{path}: tensor {k} is {str(t.dtype).removeprefix('torch.')}; expected "
                                 f"{str(want.dtype).removeprefix('torch.')}")
        if expected[k].shape != t.shape:
            raise ModelFileError(f"{path}: tensor {k} has shape {tuple(t.shape)}, model.json implies "
                                 f"{tuple(expected[k].shape)}")
        if not torch.isfinite(t).all():
            raise ModelFileError(f"{path}: tensor {k} holds NaN or infinite values (corrupt)")
    module.load_state_dict(tensors, strict=False)


def _is_tied_alias(module: torch.nn.Module, name: str) -> bool:
    sd = module.state_dict()
    t = sd[name]
    return any(other != name and v.data_ptr() == t.data_ptr() for other, v in sd.items())


def save_train_state(model_dir: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: dict) -> None:
    """Last weights + optimizer moments (tensors) and counters (JSON), for --resume."""
    tensors = {f"model.{k}": v for k, v in _tensors(module).items()}
    scalars: dict = {"param_groups": optimizer.state_dict()["param_groups"], "state": {}}
    for idx, st in optimizer.state_dict()["state"].items():
        scalars["state"][str(idx)] = {}
        for k, v in st.items():
            if torch.is_tensor(v) and v.dim() > 0:
                tensors[f"opt.{idx}.{k}"] = v.detach().to("cpu").contiguous()
            else:
                scalars["state"][str(idx)][k] = float(v)
    save_file(tensors, str(model_dir / "train_state.safetensors.tmp"))
    os.replace(model_dir / "train_state.safetensors.tmp", model_dir / "train_state.safetensors")
    (model_dir / "train_state.json").write_text(json.dumps({**meta, "optimizer": scalars}, indent=1))


def load_train_state(model_dir: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer, device: str) -> dict:
    path = model_dir / "train_state.safetensors"
    meta_path = model_dir / "train_state.json"
    if not path.exists() or not meta_path.exists():
        raise ModelFileError(f"{model_dir}: no training state to resume (train_state.safetensors/.json missing)")
    try:
        tensors = load_file(str(path), device=device)
        meta = json.loads(meta_path.read_text())
    except Exception as e:
        raise ModelFileError(f"{path}: unreadable training state ({e})") from None
    module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False)
    opt_meta = meta.pop("optimizer")
    state = {}
    for idx, scal in opt_meta["state"].items():
        st = {k: torch.tensor(v) for k, v in scal.items()}
        for k, v in tensors.items():
            if k.startswith(f"opt.{idx}."):
                st[k[len(f"opt.{idx}."):]] = v
        state[int(idx)] = st
    optimizer.load_state_dict({"state": state, "param_groups": opt_meta["param_groups"]})
    return meta
