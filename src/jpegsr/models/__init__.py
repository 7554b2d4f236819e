"""Architectures (pure ``nn.Module``s, no I/O) and the registry that names them.

Every architecture is registered below by an explicit call, so this file is the full list.
"""

from functools import partial

from jpegsr.models.dbpn import DBPN
from jpegsr.models.dncnn import DnCNN
from jpegsr.models.rcan import RCAN
from jpegsr.models.registry import (
    ModelDescriptor,
    build,
    count_parameters,
    describe,
    list_models,
    names,
    register,
    sr_output,
    task_of,
)
from jpegsr.models.slwsr import SLWSR
from jpegsr.models.two_stage import CoarseRecovery, JPEGRecovery, TwoStage

register(
    "slwsr16",
    partial(SLWSR, n_feats=16),
    description="s-LWSR, 16 features: single-stage SR (~144K params at x4)",
)
register(
    "slwsr32",
    partial(SLWSR, n_feats=32),
    description="s-LWSR, 32 features: single-stage SR, the paper's s-LWSR32 rows",
)
register(
    "slwsr64",
    partial(SLWSR, n_feats=64),
    description="s-LWSR, 64 features: single-stage SR (~2.3M params at x4)",
)
register(
    "two_stage_slwsr16",
    partial(TwoStage, stage1_feats=16, stage2_feats=16),
    two_stage=True,
    description="two-stage JPEG recovery + s-LWSR, 16 features in both stages",
)
register(
    "two_stage_slwsr32",
    partial(TwoStage, stage1_feats=32, stage2_feats=32),
    two_stage=True,
    description="two-stage JPEG recovery + s-LWSR, 32 features in both stages (the paper's model)",
)
register(
    "two_stage_slwsr32_coarse",
    partial(TwoStage, stage1_feats=32, stage2_feats=32, coarse_feats=32),
    two_stage=True,
    description="the paper's two-stage model with a half-resolution refinement (32 features) "
    "ending Stage I: a wider view of the JPEG blocks (our extension)",
)
register(
    "rcan_small",
    RCAN,
    description="RCAN baseline reduced to 5 groups x 5 RCABs x 32 features (~0.6M params)",
)
register(
    "dbpn_small",
    DBPN,
    description="D-DBPN baseline reduced to T=3 stages, 24 features (~0.56M params at x4)",
)
register(
    "dncnn",
    DnCNN,
    scales=(1,),
    task="denoise",
    channels=1,
    description="DnCNN-B: 20-layer blind Gaussian denoiser on one channel (the (M) rows' "
    "pre-denoiser, as MATLAB's denoisingNetwork('DnCNN'))",
)

__all__ = [
    "CoarseRecovery",
    "DBPN",
    "DnCNN",
    "JPEGRecovery",
    "ModelDescriptor",
    "RCAN",
    "SLWSR",
    "TwoStage",
    "build",
    "count_parameters",
    "describe",
    "list_models",
    "names",
    "register",
    "sr_output",
    "task_of",
]
