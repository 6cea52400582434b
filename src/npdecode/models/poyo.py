"""POYO (Azabou et al. 2023) from torch_brain as one of our decoders, with two readouts.

torch_brain's `POYO` embeds each spike token as its unit's embedding (plus its token
type), compresses the tokens into latents with a rotary cross-attention, refines them
with `depth` self-attention layers and reads them out with queries made of the session's
embedding at chosen times. Units and sessions live in `InfiniteVocabEmbedding`s keyed by
name, so one model spans sessions with different units; a new session gets new rows.

Our two readouts are POYO's queries placed for each task:
- `class`: one query in the middle of the window -> logits (B, C), e.g. an Allen
  presentation's image;
- `bins`: one query at the centre of each of Q equal bins of the window -> (B, Q, D),
  e.g. the cursor velocity (D = 2) per time bin of a macaque reaching window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

try:
    from torch_brain.models import POYO
    from torch_brain.models.poyo import create_linspace_latent_tokens
    from torch_brain.nn import InfiniteVocabEmbedding
except ImportError as err:  # an optional extra: say how to get it
    raise ImportError(
        f"POYO needs torch_brain ({err}): pip install 'npdecode[poyo]' (or torch_brain>=0.2.1,<0.3)"
    ) from err

from npdecode.models.poyo_tokens import Tokens, query_times
from npdecode.params import POYOParams as POYOParams  # declared with the params sections

Readout = Literal["class", "bins"]
EMBEDDINGS = ("poyo.unit_emb.", "poyo.session_emb.")  # what adapting to a new session trains


@dataclass(frozen=True)
class TokenBatch:
    """A tokenized batch as tensors (see `poyo_tokens.Tokens`), plus the query times (B, Q)."""

    unit: torch.Tensor
    time: torch.Tensor
    kind: torch.Tensor
    mask: torch.Tensor
    queries: torch.Tensor

    @classmethod
    def of(cls, tokens: Tokens, n_queries: int, device: torch.device | str = "cpu") -> TokenBatch:
        queries = query_times(tokens.length, n_queries)
        arrays = (tokens.unit, tokens.time, tokens.kind, tokens.mask, queries)
        return cls(*(torch.from_numpy(a).to(device) for a in arrays))


def unit_key(session: str, unit: str) -> str:
    """A unit's word in POYO's unit vocabulary: unit ids repeat across sessions."""
    return f"{session}/{unit}"


class POYODecoder(nn.Module):
    """Tokens of one session's windows -> logits (B, C) (`class`) or outputs (B, Q, D) (`bins`).

    Args:
        p: the architecture.
        units: session id -> its unit ids, in the order of the tokens' local unit index.
        window: the windows' length in s (where the latents sit; POYO's sequence_length).
        n_out: classes C (`class`) or output dimensions D (`bins`).
        n_queries: output bins Q per window (`bins`); 1 for `class`.
        readout: `class` or `bins`.
    """

    latent_index: torch.Tensor  # (L,) which latent, repeated at every latent step
    latent_times: torch.Tensor  # (L,) s from the window's start: the middle of its step

    def __init__(
        self,
        p: POYOParams,
        units: Mapping[str, Sequence[str]],
        window: float,
        n_out: int,
        n_queries: int = 1,
        readout: Readout = "class",
    ) -> None:
        super().__init__()
        if readout not in ("class", "bins") or (readout == "class" and n_queries != 1):
            raise ValueError(f"readout {readout!r} with {n_queries} queries: use class (1) or bins")
        self.p, self.readout, self.n_queries, self.n_out = p, readout, n_queries, n_out
        self.units = {str(s): tuple(str(u) for u in us) for s, us in units.items()}
        self.dims = {"window": float(window), "n_out": n_out, "n_queries": n_queries}
        self.poyo = POYO(
            sequence_length=float(window),
            latent_step=float(p.latent_step),
            num_latents_per_step=p.latents_per_step,
            dim_out=n_out,
            dim=p.dim,
            depth=p.depth,
            dim_head=p.dim_head,
            cross_heads=p.cross_heads,
            self_heads=p.self_heads,
            ffn_dropout=p.ffn_dropout,
            lin_dropout=p.lin_dropout,
            atn_dropout=p.atn_dropout,
            emb_init_scale=p.emb_init_scale,
        )
        self.unit_emb.initialize_vocab(self.vocab())
        self.session_emb.initialize_vocab(list(self.units))
        index, times = create_linspace_latent_tokens(
            0.0, float(window), p.latent_step, p.latents_per_step
        )
        self.register_buffer("latent_index", torch.from_numpy(index), persistent=False)
        self.register_buffer(
            "latent_times", torch.from_numpy(times.astype(np.float32)), persistent=False
        )

    def spec(self) -> dict[str, Any]:
        """What rebuilds this model (`from_spec`), as plain JSON-ready values."""
        return {
            "params": dataclasses.asdict(self.p),
            "units": {s: list(us) for s, us in self.units.items()},
            **self.dims,
            "readout": self.readout,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> POYODecoder:
        """The model `spec` describes, its weights fresh: load them with `load_tensors`."""
        from npdecode.params import section_from_dict

        p = section_from_dict(POYOParams, spec["params"], "poyo")
        keys = ("window", "n_out", "n_queries", "readout")
        return cls(p, spec["units"], *(spec[k] for k in keys))

    def tensors(self) -> dict[str, torch.Tensor]:
        """The weights as plain tensors, without the vocabularies torch_brain keeps in its state
        dict: embedding rows are in `vocab()` order (after row 0, padding), as `from_spec`
        rebuilds them."""
        return {k: v for k, v in self.state_dict().items() if isinstance(v, torch.Tensor)}

    def load_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Load weights saved by `tensors` into a model built by `from_spec` of the same spec."""
        state = dict(tensors)
        for name in ("unit_emb", "session_emb"):
            state[f"poyo.{name}.vocab"] = getattr(self, name).vocab.copy()
        self.load_state_dict(state)

    @property
    def unit_emb(self) -> InfiniteVocabEmbedding:
        return cast(InfiniteVocabEmbedding, self.poyo.unit_emb)

    @property
    def session_emb(self) -> InfiniteVocabEmbedding:
        return cast(InfiniteVocabEmbedding, self.poyo.session_emb)

    def vocab(self) -> list[str]:
        """Every unit's word, session by session."""
        return [unit_key(s, u) for s, us in self.units.items() for u in us]

    def set_units(self, units: Mapping[str, Sequence[str]]) -> None:
        """Make the model's sessions exactly `units` (session -> unit ids): rows of sessions and
        units it knows are kept, new ones start random (torch's global generator), the
        rest are dropped: torch_brain's `extend_vocab` then `subset_vocab`, as its authors
        fine-tune on new sessions."""
        self.units = {str(s): tuple(str(u) for u in us) for s, us in units.items()}
        for emb, words in (
            (self.unit_emb, self.vocab()),
            (self.session_emb, list(self.units)),
        ):
            emb.extend_vocab(words, exist_ok=True)
            emb.subset_vocab(words)

    def embedding_parameters(self) -> list[nn.Parameter]:
        """The unit and session embeddings: all that adapting to a new session trains first."""
        return [p for n, p in self.named_parameters() if n.startswith(EMBEDDINGS)]

    def forward(self, batch: TokenBatch, session: str) -> torch.Tensor:
        if session not in self.units:
            raise ValueError(f"POYO has no session {session!r}; it knows {sorted(self.units)}")
        lut = torch.tensor(
            self.unit_emb.tokenizer([unit_key(session, u) for u in self.units[session]]),
            device=batch.unit.device,
        )  # (U,) local unit index -> vocabulary row
        b = batch.unit.shape[0]
        out = self.poyo(
            input_unit_index=torch.where(batch.mask, lut[batch.unit], 0),  # (B, N); pad: row 0
            input_timestamps=batch.time,
            input_token_type=batch.kind,
            input_mask=batch.mask,
            latent_index=self.latent_index.expand(b, -1),  # (L,) -> (B, L)
            latent_timestamps=self.latent_times.expand(b, -1),
            session_index=torch.full(
                (b,), self.session_emb.tokenizer(session), device=batch.unit.device
            ),
            output_timestamps=batch.queries,  # (B, Q)
        )  # (B, Q, n_out)
        assert isinstance(out, torch.Tensor)  # a padded tensor: unpack_output is False
        return out[:, 0] if self.readout == "class" else out  # class: (B, 1, C) -> (B, C)
