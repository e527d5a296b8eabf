"""Per-image optimisation stages -> safetensors artifacts.

    python train.py stage=imagic_embed    base_model=B image=IMG target_prompt=T output_dir=D
    python train.py stage=imagic_finetune base_model=B image=IMG target_prompt=T output_dir=D
    python train.py stage=imagic          ...   # both, in order
    python train.py stage=null_text       base_model=B image=IMG source_prompt=S output_dir=D

Each stage writes D/<stage>.safetensors; `edit.py` consumes them. `train(cfg)` is importable.
Resume an interrupted stage with `resume=true` (from D/checkpoints/<stage>/last.ckpt). In a
multirun (`-m`) job N writes D/N.
"""

from editing_app.commands.train import main, train

__all__ = ["train", "main"]

if __name__ == "__main__":
    main()
