#!/usr/bin/env bash
# The real-people model (run 18 of docs/training-real-people.md), every stage resumable: rerun the script
# after a stop and each stage continues where it stopped (finished stages return at once). On 2 CPU cores the
# whole chain takes about 2.5 hours (the GAN ~55 min for 3,000 steps); on a CUDA machine drop CPU=--cpu.
#
#   DATA=../shared/data RUNS=../runs bash examples/train_real_people.sh
set -euo pipefail
DATA=${DATA:?set DATA to the shared data folder (s2f/, ravdess/, faces/, librispeech/)}
RUNS=${RUNS:-runs}
CPU=${CPU---cpu}
GAN_STEPS=${GAN_STEPS:-}  # e.g. 5000 to stop the GAN stage early this time (it resumes next time)
mkdir -p "$RUNS"

pip install -q --no-deps resemblyzer==0.1.4
[ -f "$RUNS/faces128/faces.npy" ] || s2tf data faces "$DATA/s2f" "$DATA/ravdess" "$DATA/faces/celeba" \
    "$DATA/faces/utkface" "$RUNS/faces128" --size 128
[ -f "$RUNS/ge2e.safetensors" ] || s2tf data ge2e "$RUNS/ge2e.safetensors"
[ -f "$RUNS/voices/dvectors.npy" ] || s2tf data voices "$DATA/s2f" "$DATA/ravdess" "$DATA/librispeech" \
    "$RUNS/voices" --ge2e "$RUNS/ge2e.safetensors"

# 1. E_id^v alone on the photos (~15 min on 2 cores), then frozen under the GAN
s2tf train configs/s2tf-real-identity.json --faceset "$RUNS/faces128" --out "$RUNS/identity" $CPU
s2tf export "$RUNS/identity" "$RUNS/exp/identity"
# 2. the GAN on every photo, G's synthesis layers started from the shipped default's
#    (configs/s2tf-real-faces.json is the same from noise: ~60,000 steps)
s2tf train configs/s2tf-real-faces-transfer.json --init "$RUNS/exp/identity" --faceset "$RUNS/faces128" \
    --out "$RUNS/faces" $CPU ${GAN_STEPS:+--max-steps $GAN_STEPS}
s2tf export "$RUNS/faces" "$RUNS/exp/faces"
# 3. E_id^a's head on real voices (~1 min)
s2tf train configs/s2tf-real-voices.json --init "$RUNS/exp/faces" --faceset "$RUNS/faces128" \
    --voiceset "$RUNS/voices" --out "$RUNS/voices-head" $CPU
s2tf export "$RUNS/voices-head" "$RUNS/exp/voices"
# 4. E_s^a (the mouth) through the frozen G, on a synthesised talking corpus whose real voices are the
#    training RAVDESS actors only
mkdir -p "$RUNS/ravdess-train" && cp "$DATA/ravdess/attributes.csv" "$RUNS/ravdess-train/"
for actor in "$DATA"/ravdess/Actor_*; do
    python -c "import sys; from s2tf_cli.data.holdout import is_validation as v; sys.exit(v('ravdess', '$(basename "$actor")'))" \
        && ln -sfn "$(cd "$actor" && pwd)" "$RUNS/ravdess-train/$(basename "$actor")"
done
[ -f "$RUNS/prep5/manifest.jsonl" ] || {
    s2tf data synth "$RUNS/raw5" --faces "$DATA/faces/celeba" --faces "$DATA/faces/utkface" \
        --real-voices "$RUNS/ravdess-train" --identities 200 --clips-per-identity 2 --real-clips-per-identity 10
    s2tf data prepare "$RUNS/raw5" "$RUNS/prep5" --size 64
}
s2tf train configs/s2tf-real-mouth.json --init "$RUNS/exp/voices" --corpus "$RUNS/prep5" --out "$RUNS/mouth" $CPU
s2tf export "$RUNS/mouth" "$RUNS/exp/real"
# 5. scored on the validation people, beside the shipped default
s2tf eval-people --s2f "$DATA/s2f" --ravdess "$DATA/ravdess" -w s2tf-cpu -w "$RUNS/exp/real" \
    --talking "$DATA/talking" --report "$RUNS/people.md" --json "$RUNS/people.json" --grid "$RUNS/people.png"
