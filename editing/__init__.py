"""Lightning-free core of the editing toolkit: models, DDIM maths, guidance, attention control,
editors, artifacts, images and metrics. Usable as a library without train.py/edit.py."""
