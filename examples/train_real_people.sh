#!/usr/bin/env bash
# The real-people model `s2tf-real` (the default weights; docs/training-real-people.md), every stage
# resumable: rerun the script after a stop and each stage continues where it stopped (finished stages return at
# once). On 2 CPU cores the GAN's 40,000 steps take 10+ sessions (about 1 s a step on one thread); on a CUDA
# machine drop CPU=--cpu. The pose labels need mediapipe in an environment of its own (see step 0).
#
#   DATA=../shared/data RUNS=../runs bash examples/train_real_people.sh
set -euo pipefail
DATA=${DATA:?set DATA to the shared data folder (s2f/, ravdess/, faces/, librispeech/)}
RUNS=${RUNS:-runs}
CPU=${CPU---cpu}
mkdir -p "$RUNS"

pip install -q --no-deps resemblyzer==0.1.4
[ -f "$RUNS/faces128/faces.npy" ] || s2tf data faces "$DATA/s2f" "$DATA/ravdess" "$DATA/faces/celeba" \
    "$DATA/faces/utkface" "$RUNS/faces128" --size 128
[ -f "$RUNS/ge2e.safetensors" ] || s2tf data ge2e "$RUNS/ge2e.safetensors"
[ -f "$RUNS/voices/dvectors.npy" ] || s2tf data voices "$DATA/s2f" "$DATA/ravdess" "$DATA/librispeech" \
    "$RUNS/voices" --ge2e "$RUNS/ge2e.safetensors"
# 0. head-pose and mouth labels of the face set (FaceMesh; mediapipe pins protobuf<5: its own venv)
[ -f "$RUNS/faces128/pose.csv" ] || {
    [ -x "$RUNS/mp/bin/python" ] || { python -m venv "$RUNS/mp" && "$RUNS/mp/bin/pip" install -q mediapipe==0.10.14 \
        && "$RUNS/mp/bin/pip" install -q --no-deps -e .; }
    "$RUNS/mp/bin/python" -m s2tf_cli.data.pose_labels "$RUNS/faces128"
}

# 1. E_id^v alone on the photos (~15 min on 2 cores), then frozen under the GAN
s2tf train configs/s2tf-real-identity.json --faceset "$RUNS/faces128" --out "$RUNS/identity" $CPU
s2tf export "$RUNS/identity" "$RUNS/exp/identity"
# 2. the GAN on every photo, G's synthesis layers started from the 128 px s2tf-cpu's; one run folder, the
#    recipes in turn, each taking over at the step the shipped run switched (pose labels from 13,750 steps,
#    pose from its entries alone from 23,250, the mouth entry from 25,000)
gan() { s2tf train "$1" --init "$RUNS/exp/identity" --faceset "$RUNS/faces128" --out "$RUNS/faces" $CPU --max-steps "$2"; }
gan configs/s2tf-real-faces-transfer.json 4000
gan configs/experiments/s2tf-real-faces-transfer-calm.json 4500
gan configs/experiments/s2tf-real-faces-transfer-long.json 13750
gan configs/experiments/s2tf-real-faces-pose.json 23250
gan configs/experiments/s2tf-real-faces-pose-alone.json 25000
gan configs/experiments/s2tf-real-faces-pose-mouth-40k.json 40000
s2tf export "$RUNS/faces" "$RUNS/exp/faces"
# 3. E_id^a's head on real voices, and the voice shift (~1 min)
s2tf train configs/experiments/s2tf-real-voices-light.json --init "$RUNS/exp/faces" --faceset "$RUNS/faces128" \
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
s2tf train configs/experiments/s2tf-real-mouth-entry.json --init "$RUNS/exp/voices" --corpus "$RUNS/prep5" \
    --out "$RUNS/mouth" $CPU
s2tf export "$RUNS/mouth" "$RUNS/exp/mouth"
# 5. the head-pose reader on the face set's pose labels (~25 min)
s2tf train configs/s2tf-real-pose-reader.json --init "$RUNS/exp/mouth" --faceset "$RUNS/faces128" \
    --out "$RUNS/reader" $CPU
s2tf export "$RUNS/reader" "$RUNS/exp/reader"
# 6. the mouth teacher: s2tf-cpu's drawn mouths on the training people's real voices (~45 min + 2 min)
s2tf train configs/s2tf-real-mouth-teacher.json --init "$RUNS/exp/reader" --teacher s2tf-cpu --voices "$DATA/s2f" \
    --voices "$DATA/librispeech" --voices "$DATA/ravdess" --out "$RUNS/teacher" $CPU
s2tf export "$RUNS/teacher" "$RUNS/exp/real"
# 7. scored on the validation people, beside the previous default
s2tf eval-people --s2f "$DATA/s2f" --ravdess "$DATA/ravdess" -w s2tf-cpu -w "$RUNS/exp/real" \
    --talking "$DATA/talking" --syncnet syncnet-cpu --report "$RUNS/people.md" --json "$RUNS/people.json" --grid "$RUNS/people.png"
