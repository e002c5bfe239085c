"""Studies: validated YAML files, paired reproducible sampling, Ray Tune runs, Parquet results.

    python -m sweeps run sweeps/studies/quick.yaml      # embedded local Ray
    python -m sweeps validate sweeps/studies/digits.yaml
    python -m sweeps submit sweeps/studies/mnist.yaml --address http://head:8265

Ray is imported only when a study runs, so validating a file is fast and an
invalid one is rejected (exit status 2) before any Ray process starts.
"""

from sweeps.schema import Study, StudyError, load_study, parse_study

__all__ = ["Study", "StudyError", "load_study", "parse_study"]
