"""The commands' numeric options, declared once: `medyate plan --batch`,
`train --epochs`, `demo --lr` and the others are checked against these types
(the same limits as plan.json's, from `medyate.schema`) when the command line
is parsed, so a bad value stops the command before any work is done."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ..protocol.spec import MAX_PAYLOAD
from ..schema import BUDGET_MAX, Batch, Count, Epochs, LearningRate, Seed, Temperature


class Options(BaseModel):
    # Values arrive as text: "8" is 8 here (lax), but "nan", "0" or "1.5"
    # for an integer are refused.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    batch: Batch
    epochs: Epochs
    lr: LearningRate
    temperature: Temperature
    seed: Seed
    data_seed: Seed
    ranking_samples: Count
    elements: Annotated[int, Field(ge=1, le=BUDGET_MAX)]
    n_train: Count
    n_test: Count
    calibration_samples: Count
    # `train --frame-size`: the largest payload this side asks for or sends.
    # 64 bytes still carry every fixed request header; the device's own
    # limit (spec.MAX_PAYLOAD) is the ceiling.
    frame_size: Annotated[int, Field(ge=64, le=MAX_PAYLOAD)]
    # `train --retries`: resends of a request after its first try.
    retries: Annotated[int, Field(ge=0, le=1000)]
