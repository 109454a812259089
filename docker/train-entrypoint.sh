#!/bin/sh
# Entry point of the retraining image and CronJob: train -> evaluate -> promote.
#
#   octopi-train [CONFIG] [octopi-serve retrain options]
#
# CONFIG is a training config file or a preset (card, cpu, tiny; default card). The registry is
# OCTOPI_REGISTRY_URI (a directory or s3://bucket/prefix; S3 credentials and endpoint from AWS_*).
# Runs and held-out tomograms go under the working directory. The candidate is recorded in the registry;
# the champion pointer moves only when the candidate scores higher on the held-out set. stdout ends with
# the promotion result as JSON. Exit status: 0 done (promoted or not), 2 a usage or input
# error, anything else a failure.
#
# Retraining on the users' data: with OCTOPI_TRAINING_DATA set (a copick config JSON or a folder of
# NAME.zarr + NAME.picks.json, local or s3://), the champion is fine-tuned on it (CONFIG, if given, is the
# recipe; default the fine-tuning defaults) and promoted only if it is better on the held-out part of that
# data and not worse by more than a margin on the synthetic held-out set. These settings become flags:
#   OCTOPI_TRAINING_DATA                    --data
#   OCTOPI_TRAINING_PICKS_USERS (a,b)       --picks-user a --picks-user b
#   OCTOPI_TRAINING_PICKS_SESSIONS (s,t)    --picks-session s --picks-session t
#   OCTOPI_TRAINING_TOMO_TYPE               --tomo-type
#   OCTOPI_PROMOTION_MIN_GAIN_F_BETA        --min-gain
#   OCTOPI_PROMOTION_MAX_FORGETTING_F_BETA  --max-forgetting
# They come first, so the same flag among the arguments wins (a repeated --picks-user adds a user).
set -eu

if [ -z "${OCTOPI_REGISTRY_URI:-}" ]; then
    echo "octopi-train: set OCTOPI_REGISTRY_URI to the model registry (a directory or s3://bucket/prefix)" >&2
    exit 2
fi
if [ "$#" -eq 0 ]; then
    if [ -n "${OCTOPI_TRAINING_DATA:-}" ]; then
        set -- finetune
    else
        set -- card
    fi
fi
if [ -n "${OCTOPI_TRAINING_DATA:-}" ]; then
    # Build the flags in reverse, each pushed in front of the arguments.
    set -f  # no globbing of the comma-separated values
    old_ifs=$IFS
    for pair in "max-forgetting:${OCTOPI_PROMOTION_MAX_FORGETTING_F_BETA:-}" \
        "min-gain:${OCTOPI_PROMOTION_MIN_GAIN_F_BETA:-}" "tomo-type:${OCTOPI_TRAINING_TOMO_TYPE:-}"; do
        if [ -n "${pair#*:}" ]; then
            set -- "--${pair%%:*}" "${pair#*:}" "$@"
        fi
    done
    IFS=", "  # commas (and spaces, as Settings strips them)
    sessions=""
    for session in ${OCTOPI_TRAINING_PICKS_SESSIONS:-}; do sessions="$session,$sessions"; done
    for session in $sessions; do set -- --picks-session "$session" "$@"; done
    users=""
    for user in ${OCTOPI_TRAINING_PICKS_USERS:-}; do users="$user,$users"; done
    for user in $users; do set -- --picks-user "$user" "$@"; done
    IFS=$old_ifs
    set +f
    set -- --data "$OCTOPI_TRAINING_DATA" "$@"
fi
exec octopi-serve retrain "$@" --registry "$OCTOPI_REGISTRY_URI"
