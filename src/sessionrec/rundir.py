"""The run directory's files: one home for their names.

Training writes them (`training/run.py`, `training/trainer.py`, `models/base.py`); results,
serving, reproduce and the analyses read them. Every module names a file through these.
"""

CONFIG_FILE = "config.json"  # model, hyper-parameters, dataset, training settings, provenance
METRICS_FILE = "metrics.json"  # validation and test metrics, best epoch, times
LOG_FILE = "log.jsonl"  # one JSON record per logged step and per epoch
CHECKPOINT_FILE = "checkpoint.pt"  # model, optimizer and RNG state for --resume
MODEL_FILE = "model.json"  # model name and hyper-parameters, to rebuild it
WEIGHTS_FILE = "model.safetensors"  # what it learned (safetensors: no pickle)
PER_CASE_FILE = "per_case.npz"  # per-test-case metrics (reproduce, significance tests)
KEY_FILE = "reproduce.json"  # the reproduce job a cached run belongs to
SESSIONS_LOG_FILE = "sessions.jsonl"  # sessions ingested live (serving/live.py)
SELECT_DIR, REFIT_DIR = "select", "refit"  # the paper protocol's two phases
