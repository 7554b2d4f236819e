"""jpegsr models as ONNX files, and ONNX files run by onnxruntime as jpegsr models.

    jpegsr export onnx blind_long -o blind_long.onnx
    jpegsr upscale photo.jpg --model blind_long.onnx          # an ONNX file, by onnxruntime
    jpegsr upscale photo.jpg --backend onnxruntime            # a shipped model, exported first

The file takes ``lq`` (N x 3 x H x W float32 RGB in [0, 1], any H and W) and gives ``sr``
(N x 3 x sH x sW); its metadata records the jpegsr architecture, scale, opset and the weights'
own metadata. This is also the route into other runtimes (chaiNNer loads ONNX models).
Needs the optional extra ``pip install "jpegsr[onnx]"``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jpegsr.models.registry import ModelDescriptor, SROnly
from jpegsr.weights_io import LoadedModel, WeightsError

OPSET = 17


def export_onnx(loaded: LoadedModel, path: str | Path, opset: int = OPSET) -> Path:
    """Write ``loaded`` as an ONNX file with dynamic height and width (atomically)."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    module = SROnly(loaded.module).eval().to(memory_format=torch.contiguous_format)
    example = torch.rand(1, 3, 32, 32)
    axes = {
        "lq": {0: "batch", 2: "height", 3: "width"},
        "sr": {0: "batch", 2: "height", 3: "width"},
    }
    try:
        with torch.no_grad():
            torch.onnx.export(module, (example,), str(tmp), input_names=["lq"],
                              output_names=["sr"], dynamic_axes=axes, opset_version=opset,
                              dynamo=False)  # fmt: skip
        model = onnx.load(str(tmp))
        meta = {**loaded.metadata, "jpegsr_arch": loaded.descriptor.name,
                "scale": str(loaded.descriptor.scale), "opset": str(opset),
                "source": Path(loaded.source).name}  # fmt: skip
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class OnnxRuntimeModule(nn.Module):
    """An onnxruntime session behind the ``module(x) -> sr`` call that inference expects."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])  # fmt: skip
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feed = {"lq": np.ascontiguousarray(x.detach().float().cpu().numpy())}
        return torch.from_numpy(self.session.run(["sr"], feed)[0])


def load_onnx(path: str | Path) -> LoadedModel:
    """An ONNX file written by :func:`export_onnx` as a :class:`LoadedModel` (fp32 only)."""
    if not Path(path).is_file():
        raise WeightsError(f"ONNX file not found: {path}")
    try:
        module = OnnxRuntimeModule(path)
    except ImportError as exc:
        raise WeightsError(f"ONNX models need the onnx extra ({exc.name} is missing): "
                           "pip install 'jpegsr[onnx]'") from None  # fmt: skip
    except Exception as exc:  # onnxruntime's own errors: a bad or foreign file
        first = (str(exc).strip().splitlines() or [""])[0]
        raise WeightsError(f"cannot load ONNX model {path}: {first}") from None
    meta = module.metadata
    if "scale" not in meta:
        raise WeightsError(f"{path} has no jpegsr scale metadata (not exported by jpegsr)")
    descriptor = ModelDescriptor(name=meta.get("jpegsr_arch", "onnx"), scale=int(meta["scale"]),
                                 bf16=False, description="onnxruntime")  # fmt: skip
    return LoadedModel(module.eval(), descriptor, str(path), meta)


@functools.lru_cache(maxsize=4)
def _exported(source: str) -> LoadedModel:
    """``source`` exported once per process and loaded into one onnxruntime session."""
    from jpegsr.weights_io import load_model

    folder = Path(tempfile.mkdtemp(prefix="jpegsr-onnx-"))
    return load_onnx(export_onnx(load_model(source), folder / f"{Path(source).stem}.onnx"))


def as_onnxruntime(loaded: LoadedModel) -> LoadedModel:
    """The same model run by onnxruntime (exported once per process to a temporary file)."""
    if isinstance(loaded.module, OnnxRuntimeModule):
        return loaded
    try:
        ort_model = _exported(loaded.source)
    except ImportError as exc:
        raise WeightsError(f"the onnxruntime backend needs the onnx extra ({exc.name} is "
                           "missing): pip install 'jpegsr[onnx]'") from None  # fmt: skip
    return dataclasses.replace(ort_model, metadata=loaded.metadata)
