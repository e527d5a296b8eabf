"""`python train.py ...` in a checkout: the `train` command of `editing_app/commands/train.py` (installed:
`diffusion-edit-train`), whose docstring and `--help` give its usage."""

from editing_app.commands.train import main, train

__all__ = ["train", "main"]

if __name__ == "__main__":
    main()
