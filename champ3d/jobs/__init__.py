"""Batch jobs: many reference/driving cases, every stage cached, resumable and shardable.

- :mod:`champ3d.jobs.spec`: the job file (YAML) and its validation;
- :mod:`champ3d.jobs.stages`: the stages of a case and what keys each result;
- :mod:`champ3d.jobs.generators`: the generators a case can name;
- :mod:`champ3d.jobs.cache`: atomic, locked, content-addressed stage results;
- :mod:`champ3d.jobs.hashing`: content hashes of inputs and settings;
- :mod:`champ3d.jobs.evaluation`: the per-case evaluation stage;
- :mod:`champ3d.jobs.runner`: running a job (or one shard of it), run records;
- :mod:`champ3d.jobs.report`: the job report.

``champ3d batch JOB.yaml [--shard K/N] [--dry-run]`` is the command line.
"""
