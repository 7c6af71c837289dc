"""Generation pipelines built on :mod:`champ3d.models`."""
from champ3d.pipelines.champ_pipeline import ChampPipeline, ChampPipelineOutput, champ_scheduler
from champ3d.pipelines.context import SlidingSchedule, UniformSchedule, make_context_schedule
from champ3d.pipelines.guidance_source import ArrayGuidanceSource, FolderGuidanceSource, GuidanceSource

__all__ = [
    "ArrayGuidanceSource",
    "ChampPipeline",
    "ChampPipelineOutput",
    "FolderGuidanceSource",
    "GuidanceSource",
    "SlidingSchedule",
    "UniformSchedule",
    "champ_scheduler",
    "make_context_schedule",
]
