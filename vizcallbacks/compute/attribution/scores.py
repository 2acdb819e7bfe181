"""The explained output of a classifier and the score of one class in it, shared by Grad-CAM and
the attribution methods: the logit taken before the final softmax/sigmoid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from vizcallbacks.compute.backend import Tap
from vizcallbacks.compute.forward import Recording, record_forward

__all__ = ["ClassIndex", "ClassScores", "pick_output"]

ClassIndex = int | Sequence[int] | np.ndarray | None


def pick_output(model: keras.Model, outputs: Any, output: str | int | None) -> Any:
    """The model output named by ``output`` (a name or index; ``None``: the only one)."""
    if not isinstance(outputs, (list, tuple, dict)):
        if output not in (None, 0, *_output_names(model)[:1]):
            raise ValueError(f"output={output!r}: the model has a single output.")
        return outputs
    names = _output_names(model)
    if output is None:
        if len(outputs) == 1:
            return next(iter(outputs.values())) if isinstance(outputs, dict) else outputs[0]
        raise ValueError(
            f"The model has {len(outputs)} outputs; pass output= with one of their names "
            f"{names} or an index 0..{len(outputs) - 1}."
        )
    if isinstance(output, bool) or not isinstance(output, (str, int)):
        raise TypeError(f"output must be an output name or index. Received: output={output!r}")
    if isinstance(output, int):
        if not -len(outputs) <= output < len(outputs):
            raise ValueError(
                f"output={output} is out of range: the model has {len(outputs)} outputs {names}."
            )
        output = names[output] if isinstance(outputs, dict) else output
    if isinstance(outputs, dict):
        if output not in outputs:
            raise ValueError(f"output={output!r}: the model's outputs are {list(outputs)}.")
        return outputs[output]
    if isinstance(output, str):
        if output not in names:
            raise ValueError(f"output={output!r}: the model's outputs are {names}.")
        output = names.index(output)
    return outputs[output]


def _output_names(model: keras.Model) -> list[str]:
    return [str(n) for n in (getattr(model, "output_names", None) or [])]


class ClassScores:
    """Which output of ``model`` is explained (``output``: name or index when several), how many
    classes it has and the squashing it applies, read from one recorded pass."""

    def __init__(
        self, model: keras.Model, recording: Recording, output: str | int | None, what: str
    ) -> None:
        self.model = model
        self.output = output
        chosen = pick_output(model, recording.outputs, output)
        if len(chosen.shape) != 2:
            raise ValueError(
                f"{what} needs a classifier output of shape (N, classes). "
                f"Received an output of shape {tuple(chosen.shape)}."
            )
        self.num_classes = int(chosen.shape[-1])
        self.squashing = recording.logits(chosen)[1]

    def class_indices(self, class_index: ClassIndex, n: int) -> np.ndarray:
        """``class_index`` as int32 ``(n,)``, ``-1`` meaning "the predicted class"; validated."""
        classes = max(self.num_classes, 2)  # one sigmoid unit: class 0 (negative) or 1
        if class_index is None:
            return np.full(n, -1, dtype=np.int32)
        if isinstance(class_index, (int, np.integer)) and not isinstance(class_index, bool):
            values = np.full(n, int(class_index))
        else:
            values = np.asarray(class_index)
            if values.dtype == bool or not np.issubdtype(values.dtype, np.integer):
                raise TypeError(
                    "class_index must be None, an int, or one int per image. "
                    f"Received: class_index={class_index!r}"
                )
            if values.shape != (n,):
                raise ValueError(
                    f"class_index needs one class per image: shape ({n},). "
                    f"Received shape {values.shape}"
                )
        bad = values[(values < 0) | (values >= classes)]
        if bad.size:
            raise ValueError(
                f"class_index must lie in 0..{classes - 1} (the model has "
                f"{self.num_classes} output unit{'s' if self.num_classes > 1 else ''}). "
                f"Received: {bad.tolist()[:5]}"
            )
        return values.astype(np.int32)

    def forward(self, inputs: Any, taps: dict[int, Tap] | None = None) -> tuple[Recording, Any]:
        """One recorded pass of ``inputs`` (``taps``: see ``record_forward``) and the explained
        output's float32 logits."""
        recording = record_forward(self.model, inputs, taps)
        output = pick_output(self.model, recording.outputs, self.output)
        return recording, ops.cast(recording.logits(output)[0], "float32")

    def class_logit(self, logits: Any, classes: Any) -> Any:
        """The score of ``classes`` ``(N,)`` (all ≥ 0) per image: its logit; for one sigmoid
        unit, ``+logit`` for class 1 and ``-logit`` for class 0."""
        if self.num_classes == 1:
            return ops.where(classes == 1, 1.0, -1.0) * logits[:, 0]
        return ops.take_along_axis(logits, ops.cast(classes, "int32")[:, None], axis=1)[:, 0]

    def class_probability(self, logits: Any, classes: Any) -> Any:
        """The probability the model gives ``classes`` ``(N,)`` (all ≥ 0)."""
        if self.num_classes == 1:
            return ops.sigmoid(self.class_logit(logits, classes))
        probs = ops.sigmoid(logits) if self.squashing == "sigmoid" else ops.softmax(logits)
        return ops.take_along_axis(probs, ops.cast(classes, "int32")[:, None], axis=1)[:, 0]

    def scores(self, logits: Any, classes: Any) -> dict[str, Any]:
        """Predicted class, probabilities and the summed score to differentiate; ``classes``
        ``-1`` means the predicted class."""
        if self.num_classes == 1:
            predicted = ops.cast(logits[:, 0] > 0, "int32")
        else:
            predicted = ops.cast(ops.argmax(logits, axis=-1), "int32")
        target = ops.where(classes < 0, predicted, ops.cast(classes, "int32"))
        return {
            "score": ops.sum(self.class_logit(logits, target)),
            "class_index": target,
            "predicted": predicted,
            "probability": self.class_probability(logits, predicted),
            "class_probability": self.class_probability(logits, target),
        }
