#!/usr/bin/env bash
# The demo world's quality tables (README "Results on the demo"): every method over generated demo
# cases, judged by the attribute oracle, then the quality-bar summaries.
#   scripts/demo_quality.sh [OUT=runs/quality] [N=20] [PARTS]   (about 2 h on one CPU core)
# N: cases per edit type.
# PARTS (default: all of "imagic null_text direct_inversion blended summary") runs some of them,
# e.g. two shells side by side on two cores, then the summary:
#   scripts/demo_quality.sh runs/quality 20 "imagic direct_inversion" &
#   scripts/demo_quality.sh runs/quality 20 "null_text blended"; wait
#   scripts/demo_quality.sh runs/quality 20 summary
# Each evaluate.py run is resumable: rerunning skips finished cases.
set -euo pipefail
OUT=${1:-runs/quality}
N=${2:-20}
ALL="imagic null_text direct_inversion blended summary"
PARTS=" ${3:-$ALL} "
for p in $PARTS; do
  [[ " $ALL " == *" $p "* ]] || { echo "demo_quality.sh: unknown part '$p' (parts: $ALL)" >&2; exit 2; }
done
part() { [[ "$PARTS" == *" $1 "* ]]; }
PY=${PY:-.venv/bin/python}
export TQDM_DISABLE=1
common=(suite=demo base_model=demo device=cpu)

# Imagic: shape and position edits, eta swept, two seeds; stage=imagic_demo per case.
part imagic && $PY evaluate.py "${common[@]}" method=imagic output_dir="$OUT/imagic" \
    "suite.edit_types=[shape,position]" suite.n="$N" train_stages.imagic.stage=imagic_demo \
    "method.eta=[0,0.6,0.7,0.8,0.9,1.0]" "method.seeds=[0,1]" method.guidance_scale=3

# Null-text inversion + Prompt-to-Prompt: colour swaps, Replace + LocalBlend on the
# differing words, against plain DDIM inversion with the same edit. The edits are guided with the
# "" null (method.edit_null=empty; for ddim the same as shared): the optimised nulls keep only the
# source branch on the image (shared nulls deform the edits on the demo model, docs/methods.md).
part null_text && for inv in null_text ddim; do
  $PY evaluate.py "${common[@]}" method=null_text_p2p output_dir="$OUT/p2p_$inv" \
      "suite.edit_types=[colour]" suite.n="$N" method.inversion=$inv variant=$inv \
      method.blend_words=auto method.blend_resolution=0.5 method.blend_threshold=0.5 \
      method.edit_null=empty
done

# Direct Inversion: colour swaps, the noise-merge lambda swept.
part direct_inversion && $PY evaluate.py "${common[@]}" method=direct_inversion output_dir="$OUT/direct_inversion" \
    "suite.edit_types=[colour]" suite.n="$N" "method.noise_lambda=[0,0.25,0.5,0.75,1.0]" \
    method.invert_with_source=true

# Blended Diffusion: shape and colour edits inside the suite's masks, CLIP-ranked.
part blended && $PY evaluate.py "${common[@]}" method=blended output_dir="$OUT/blended" \
    "suite.edit_types=[shape,colour]" suite.n="$N" method.text_condition=true \
    method.num_candidates=8 method.num_augmentations=8

part summary || exit 0
# One table over every method (OUT/summary.csv) and the editability-fidelity plots (OUT/plots/).
$PY evaluate.py "${common[@]}" output_dir="$OUT" summarize_only=true plot=true

$PY -m editing_app.evaluation.quality_bars imagic "$OUT/imagic"
$PY -m editing_app.evaluation.quality_bars null_text "$OUT/p2p_null_text" "$OUT/p2p_ddim"
$PY -m editing_app.evaluation.quality_bars direct_inversion "$OUT/direct_inversion"
$PY -m editing_app.evaluation.quality_bars blended "$OUT/blended"
