"""The application layer: what train.py, edit.py, evaluate.py and demo.py share (Hydra configs, builders, CLI plumbing) and the evaluation runner."""
