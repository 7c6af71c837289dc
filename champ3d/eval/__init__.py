"""Evaluation metrics and protocols for human image animation ("baseline numbers").

Public entry points:

- :func:`evaluate` compares folders of predicted and ground-truth videos under a protocol
  and writes per-video results and per-frame / per-video / summary tables;
- :func:`write_report` aggregates the per-video results found under a run folder;
- :func:`load_protocol` reads ``configs/protocols/<name>.yaml``;
- :data:`METRICS` / :data:`PROFILES`: the metric registry and the ``legacy`` / ``clean``
  profiles; :mod:`champ3d.eval.pixel`, :mod:`champ3d.eval.lpips`, :mod:`champ3d.eval.pose`,
  :mod:`champ3d.eval.multiview`, :func:`frechet_distance` for direct use.
"""
from champ3d.eval.aggregate import write_report
from champ3d.eval.evaluate import EvaluationResult, evaluate
from champ3d.eval.frechet import frechet_distance
from champ3d.eval.protocol import Protocol, load_protocol
from champ3d.eval.registry import METRICS, PROFILES, MetricSpec, Profile
from champ3d.eval.weights import KNOWN_WEIGHTS, WeightsStore

__all__ = [
    "EvaluationResult", "evaluate", "write_report", "frechet_distance", "Protocol", "load_protocol", "METRICS",
    "PROFILES", "MetricSpec", "Profile", "KNOWN_WEIGHTS", "WeightsStore",
]
