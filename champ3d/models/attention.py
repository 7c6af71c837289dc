"""Attention, spatial transformer blocks and Champ's reference attention.

Layout convention for everything in this module: token tensors are ``(N, L, C)`` with
``N = batch * frames`` rows in **frame-major** order (row ``b * F + f`` is frame ``f`` of
batch entry ``b``), images are ``(N, C, h, w)`` in the same row order.

Reference attention (Champ's "write"/"read", §4 of the Champ spec): the reference UNet runs
with a :class:`ReferenceWriter`, which records the output of ``norm1`` (the normed
self-attention input) of every :class:`SpatialTransformerBlock`, keyed by the block's module
path. The denoising UNet runs with a :class:`ReferenceReader`: in each spatial
self-attention the keys and values are ``[own tokens ; bank tokens]``, the bank entry repeated
for every frame, using the denoising UNet's own ``attn1`` weights. Both UNets have the same
module tree, so a reader block finds its bank entry under its own module path.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

# Champ's ReferenceAttentionControl.update() copies the bank as fp16 by default, so even an
# fp32 run reads an fp16-rounded bank.
OFFICIAL_BANK_DTYPE = torch.float16


class Attention(nn.Module):
    """Multi-head attention with diffusers' key names (``to_q``, ``to_k``, ``to_v``, ``to_out.0``).

    q/k/v have no bias, the output projection has one; scale is ``1/sqrt(head_dim)``.
    """

    def __init__(self, query_dim: int, heads: int, head_dim: int, context_dim: Optional[int] = None, dropout: float = 0.0):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(dropout)])

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x`` (N, Lq, C) attends to ``context`` (N, Lk, Cc), or to itself when ``context`` is None."""
        context = x if context is None else context
        q, k, v = (self._split_heads(t) for t in (self.to_q(x), self.to_k(context), self.to_v(context)))
        out = F.scaled_dot_product_attention(q, k, v)
        n, heads, length, head_dim = out.shape
        out = out.transpose(1, 2).reshape(n, length, heads * head_dim)
        return self.to_out[1](self.to_out[0](out))

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(N, L, heads * d) -> (N, heads, L, d)."""
        n, length, inner = t.shape
        return t.view(n, length, self.heads, inner // self.heads).transpose(1, 2)


class GEGLU(nn.Module):
    """``proj`` to 2x width, split into value and gate, ``value * gelu(gate)`` (exact GELU)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward, ``dim -> 4*dim -> dim``; keys ``net.0.proj`` and ``net.2``."""

    def __init__(self, dim: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Dropout(dropout), nn.Linear(4 * dim, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class ReferenceWriter:
    """Records the reference bank during a reference-UNet forward.

    ``bank[module_path]`` is the block's ``norm1`` output, (B_ref, h*w, C), as computed.
    """

    def __init__(self) -> None:
        self.bank: dict[str, torch.Tensor] = {}

    def self_attention(self, key: str, attn: Attention, normed: torch.Tensor) -> torch.Tensor:
        if key in self.bank:
            raise RuntimeError(f"reference bank entry {key!r} written twice in one forward")
        self.bank[key] = normed
        return attn(normed)


class ReferenceReader:
    """Reads a reference bank during a denoising-UNet forward.

    ``bank`` maps block module paths to (B_bank, L, C) tensors; B_bank is 1 (shared by every
    batch entry) or the full batch size. ``num_frames`` is F of the ``(b f)`` row layout.
    The first ``num_uncond`` batch entries are the classifier-free-guidance unconditional half:
    they use plain self-attention and ignore the bank, exactly as Champ's reader in CFG mode
    does (it overwrites those rows with plain self-attention).
    """

    def __init__(self, bank: Mapping[str, torch.Tensor], num_frames: int, num_uncond: int = 0):
        self.bank = bank
        self.num_frames = num_frames
        self.num_uncond = num_uncond

    def self_attention(self, key: str, attn: Attention, normed: torch.Tensor) -> torch.Tensor:
        entry = self.bank.get(key)
        if entry is None:
            raise KeyError(f"reference bank has no entry for block {key!r}")
        uncond_rows = self.num_uncond * self.num_frames
        cond = normed[uncond_rows:]
        if entry.shape[0] == 1:
            bank_rows = entry.expand(cond.shape[0], -1, -1)
        elif entry.shape[0] * self.num_frames == normed.shape[0]:
            bank_rows = entry[self.num_uncond :].repeat_interleave(self.num_frames, dim=0)
        else:
            raise ValueError(f"bank entry {key!r} has batch {entry.shape[0]}, rows are {normed.shape[0]}")
        out = attn(cond, torch.cat([cond, bank_rows.to(cond.dtype)], dim=1))
        if uncond_rows:
            out = torch.cat([attn(normed[:uncond_rows]), out], dim=0)
        return out


def bank_for_reading(bank: Mapping[str, torch.Tensor], dtype: Optional[torch.dtype]) -> dict[str, torch.Tensor]:
    """The bank as a reader sees it: rounded to ``dtype`` (Champ's default: fp16), or as written when None.

    The reader casts it back to the compute dtype when it concatenates it with its own tokens.
    """
    return {key: value if dtype is None else value.to(dtype) for key, value in bank.items()}


class SpatialTransformerBlock(nn.Module):
    """Champ's (Temporal)BasicTransformerBlock as configured: self-attention, optional cross-attention, GEGLU FF.

    ``x = attn1(norm1(x)) + x``; ``x = attn2(norm2(x), context) + x``; ``x = ff(norm3(x)) + x``.
    LayerNorm eps 1e-5. With a reference writer/reader, ``attn1`` goes through it.
    ``bank_key`` is the block's module path inside its UNet, set by the UNet after construction.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, cross_attention_dim: Optional[int], dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim, dropout=dropout)
        if cross_attention_dim is not None:
            self.norm2 = nn.LayerNorm(dim)
            self.attn2 = Attention(dim, heads, head_dim, context_dim=cross_attention_dim, dropout=dropout)
        else:
            self.norm2 = self.attn2 = None
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, dropout=dropout)
        self.bank_key = ""

    def forward(
        self,
        x: torch.Tensor,
        context: Optional[torch.Tensor] = None,
        reference: ReferenceWriter | ReferenceReader | None = None,
    ) -> torch.Tensor:
        normed = self.norm1(x)
        if reference is None:
            x = self.attn1(normed) + x
        else:
            x = reference.self_attention(self.bank_key, self.attn1, normed) + x
        if self.attn2 is not None:
            x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Per-image transformer: GroupNorm (eps 1e-6) -> 1x1 ``proj_in`` -> blocks -> 1x1 ``proj_out`` -> + input.

    Works on (N, C, h, w) images (N = batch * frames, so the GroupNorm is per frame); heads of
    width ``channels // heads``. Champ's Transformer2DModel/Transformer3DModel with
    ``use_linear_projection=False``.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        norm_groups: int,
        cross_attention_dim: Optional[int],
        num_layers: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        head_dim = channels // heads
        inner = heads * head_dim
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(channels, inner, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            [SpatialTransformerBlock(inner, heads, head_dim, cross_attention_dim, dropout) for _ in range(num_layers)]
        )
        self.proj_out = nn.Conv2d(inner, channels, kernel_size=1)

    def forward(
        self,
        x: torch.Tensor,
        context: Optional[torch.Tensor] = None,
        reference: ReferenceWriter | ReferenceReader | None = None,
    ) -> torch.Tensor:
        n, _, h, w = x.shape
        hidden = self.proj_in(self.norm(x))
        inner = hidden.shape[1]
        hidden = hidden.permute(0, 2, 3, 1).reshape(n, h * w, inner)
        for block in self.transformer_blocks:
            hidden = block(hidden, context, reference)
        hidden = hidden.reshape(n, h, w, inner).permute(0, 3, 1, 2).contiguous()
        return self.proj_out(hidden) + x


def assign_bank_keys(model: nn.Module) -> None:
    """Give every :class:`SpatialTransformerBlock` in ``model`` its module path as ``bank_key``."""
    for name, module in model.named_modules():
        if isinstance(module, SpatialTransformerBlock):
            module.bank_key = name
