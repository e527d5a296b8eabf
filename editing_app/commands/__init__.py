"""The entry points' code: `train`, `edit`, `evaluate` and `demo`, each a module with a `main()`
that the console scripts of pyproject.toml call (`diffusion-edit-train`, `diffusion-edit`,
`diffusion-edit-evaluate`, `diffusion-edit-demo`) and that `python train.py ...` in a checkout
runs through the thin scripts at the project root."""
